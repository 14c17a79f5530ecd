import { describe, expect, it } from "vitest";
import { buildUrl, detailText } from "./client";
import { asList, asSymbolMap } from "./endpoints";
import { backoffDelay } from "./ws";

describe("client", () => {
  it("builds query strings without empty filters", () => {
    expect(buildUrl("/api/trading/orders", { symbol: "BTCUSDT", side: "", page: 2, status: undefined })).toBe(
      "/api/trading/orders?symbol=BTCUSDT&page=2",
    );
    expect(buildUrl("/x")).toBe("/x");
  });

  it("reads FastAPI's detail, plain or validation list", () => {
    expect(detailText({ detail: "set APP_PASSWORD" }, "x")).toBe("set APP_PASSWORD");
    expect(detailText({ detail: [{ loc: ["body", "password"], msg: "field required" }] }, "x")).toBe(
      "password: field required",
    );
    expect(detailText(null, "fallback")).toBe("fallback");
  });
});

describe("endpoints", () => {
  it("accepts a list bare or wrapped", () => {
    expect(asList([1, 2])).toEqual([1, 2]);
    expect(asList({ items: [3] })).toEqual([3]);
    expect(asList({ runs: [4] }, "runs")).toEqual([4]);
    expect(asList({ nothing: 1 })).toEqual([]);
  });

  it("accepts metrics as a map or as rows", () => {
    expect(asSymbolMap({ BTCUSDT: { mid: "1" } })).toEqual({ BTCUSDT: { symbol: "BTCUSDT", mid: "1" } });
    expect(asSymbolMap([{ symbol: "ETHUSDT", mid: "2" }])).toEqual({ ETHUSDT: { symbol: "ETHUSDT", mid: "2" } });
  });
});

describe("ws backoff", () => {
  it("grows, caps and jitters", () => {
    expect(backoffDelay(0, () => 0.5)).toBe(500);
    expect(backoffDelay(3, () => 0.5)).toBe(4000);
    expect(backoffDelay(30, () => 0.5)).toBe(30000);
    expect(backoffDelay(0, () => 0)).toBe(375);
    expect(backoffDelay(0, () => 1)).toBe(625);
  });
});
