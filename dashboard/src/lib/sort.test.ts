import { describe, expect, it } from "vitest";
import { mergeCandles, toBars, toMarkers } from "./candles";
import { severityLevel } from "./severity";
import { compareValues, nextSort, sortRows } from "./sort";

describe("sort", () => {
  it("sorts numeric strings as numbers and text naturally", () => {
    expect(sortRows(["10", "9", "100.5", "-1"], (x) => x, "asc")).toEqual(["-1", "9", "10", "100.5"]);
    expect(sortRows(["ETHUSDT", "BTCUSDT", "SOLUSDT"], (x) => x, "desc")).toEqual(["SOLUSDT", "ETHUSDT", "BTCUSDT"]);
  });

  it("keeps missing values last in both directions", () => {
    const rows = [{ v: "2" }, { v: null }, { v: "1" }, {}];
    const get = (r: { v?: string | null }) => r.v;
    expect(sortRows(rows, get, "asc").map(get)).toEqual(["1", "2", null, undefined]);
    expect(sortRows(rows, get, "desc").map(get)).toEqual(["2", "1", null, undefined]);
  });

  it("compares booleans and flips direction on the same column", () => {
    expect(compareValues(true, false)).toBeGreaterThan(0);
    expect(nextSort({ key: "a", direction: "desc" }, "a")).toEqual({ key: "a", direction: "asc" });
    expect(nextSort({ key: "a", direction: "asc" }, "b")).toEqual({ key: "b", direction: "desc" });
  });
});

describe("candles", () => {
  const c = (ts: number, close = "1") => ({ ts, open: "1", high: "2", low: "0.5", close });

  it("merges by open time, newest wins, bounded", () => {
    const merged = mergeCandles([c(1000), c(2000, "1")], [c(2000, "3"), c(3000)], 2);
    expect(merged.map((x) => x.ts)).toEqual([2000, 3000]);
    expect(merged[0]!.close).toBe("3");
    const many = mergeCandles([], Array.from({ length: 800 }, (_, i) => c(i * 300_000)));
    expect(many).toHaveLength(500);
    expect(many[0]!.ts).toBe(300 * 300_000);
  });

  it("skips unreadable bars and snaps markers to bars in range", () => {
    const bars = toBars([c(0), { ts: 300_000, open: "x", high: "1", low: "1", close: "1" }, c(600_000)]);
    expect(bars.map((b) => b.time)).toEqual([0, 600]);
    const markers = toMarkers(
      [
        { ts: 650_000, kind: "sell" },
        { ts: 10_000, kind: "buy" },
        { ts: 9_000_000, kind: "fill" },
      ],
      bars,
      300_000,
    );
    expect(markers.map((m) => [m.time, m.shape])).toEqual([
      [0, "arrowUp"],
      [600, "arrowDown"],
    ]);
  });
});

describe("severity", () => {
  it("orders the pipeline's names", () => {
    expect(["none", "low", "medium", "high", "HIGH", 2, "odd"].map(severityLevel)).toEqual([0, 1, 2, 3, 3, 2, null]);
  });
});
