import { describe, expect, it } from "vitest";
import { add, compare, mul, parseDecimal, round, sub, toPlainString } from "./decimal";
import { fmtDec, fmtMoney, fmtPct, fmtPrice, fmtTime, signClass } from "./format";
import { livePnl, midOf } from "./pnl";

const d = (s: string) => parseDecimal(s)!;

describe("decimal", () => {
  it("parses strings, numbers and exponents", () => {
    expect(toPlainString(d("65000.10"))).toBe("65000.1");
    expect(toPlainString(d("-0.000123"))).toBe("-0.000123");
    expect(toPlainString(d("1E+2"))).toBe("100");
    expect(toPlainString(d("1.5e-3"))).toBe("0.0015");
    expect(toPlainString(parseDecimal(42)!)).toBe("42");
    expect(parseDecimal("None")).toBeNull();
    expect(parseDecimal("")).toBeNull();
    expect(parseDecimal(Number.NaN)).toBeNull();
  });

  it("adds, subtracts and multiplies exactly where floats do not", () => {
    expect(toPlainString(add(d("0.1"), d("0.2")))).toBe("0.3");
    expect(toPlainString(sub(d("100.05"), d("100")))).toBe("0.05");
    expect(toPlainString(mul(d("0.001"), d("65000.5")))).toBe("65.0005");
  });

  it("rounds half away from zero", () => {
    expect(toPlainString(round(d("1.005"), 2))).toBe("1.01");
    expect(toPlainString(round(d("-1.005"), 2))).toBe("-1.01");
    expect(toPlainString(d("1.2"), 3)).toBe("1.200");
    expect(toPlainString(round(d("-0.001"), 2), 2)).toBe("0.00");
  });

  it("compares across scales", () => {
    expect(compare(d("1.10"), d("1.1"))).toBe(0);
    expect(compare(d("-2"), d("1.5"))).toBe(-1);
  });
});

describe("format", () => {
  it("groups and fixes places without floats", () => {
    expect(fmtMoney("12345.678")).toBe("12,345.68");
    expect(fmtMoney("-5", true)).toBe("-5.00");
    expect(fmtMoney("5", true)).toBe("+5.00");
    expect(fmtPrice("65000.10")).toBe("65,000.1");
    expect(fmtPrice("0.000012345678912")).toBe("0.00001235");
    expect(fmtDec("12345678901234567890.12", { dp: 2 })).toBe("12,345,678,901,234,567,890.12");
  });

  it("shows a dash for missing values", () => {
    expect(fmtMoney(undefined)).toBe("—");
    expect(fmtPct(null)).toBe("—");
    expect(fmtTime(0)).toBe("—");
  });

  it("signs percentages and classes", () => {
    expect(fmtPct(1.5)).toBe("+1.50%");
    expect(fmtPct("-0.25")).toBe("-0.25%");
    expect(fmtPct(-0.0004)).toBe("0.00%");
    expect(fmtPct(0.0004)).toBe("0.00%");
    expect(signClass("-0.01")).toBe("neg");
    expect(signClass("0.00")).toBe("");
  });
});

describe("pnl", () => {
  it("long and short from the mid", () => {
    expect(livePnl("Buy", "100", "2", "101.5")).toEqual({ pnl: "3", pnlPct: 1.5 });
    expect(livePnl("Sell", "100", "2", "101.5")).toEqual({ pnl: "-3", pnlPct: -1.5 });
    expect(livePnl("Buy", "100", "0", "101")).toBeNull();
    expect(livePnl("Buy", null, "1", "101")).toBeNull();
  });

  it("takes the mid exactly", () => {
    expect(midOf("65000.1", "65000.2")).toBe("65000.15");
    expect(midOf("1", "2")).toBe("1.5");
    expect(midOf(undefined, "2")).toBeNull();
  });
});

describe("price floats", () => {
  it("hides float noise by magnitude", async () => {
    const { fmtPrice } = await import("./format");
    expect(fmtPrice(64982.1600548)).toBe("64,982.16");
    expect(fmtPrice(145.12)).toBe("145.120");
    expect(fmtPrice(0.000012345)).toBe("0.00001235");
    expect(fmtPrice("0.00001234")).toBe("0.00001234"); // a Decimal string keeps its own places
  });
});
