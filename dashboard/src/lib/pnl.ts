// Live PnL of a position or of an order's filled part, from the entry price and a mark (the book mid),
// in exact decimals; only the percentage is a float, for display.
import { add, mul, parseDecimal, sub, toNumber, toPlainString, type Decimal } from "./decimal";

export interface LivePnl {
  pnl: string; // Decimal string in the quote currency, full precision
  pnlPct: number | null; // relative to the entry notional
}

/** Side "Buy" is long; anything else ("Sell") short. Null when a number is missing. */
export function livePnl(side: string, entry: unknown, quantity: unknown, mark: unknown): LivePnl | null {
  const e = parseDecimal(entry);
  const q = parseDecimal(quantity);
  const m = parseDecimal(mark);
  if (!e || !q || !m || q.units === 0n) return null;
  const long = side.toLowerCase() === "buy" || side.toLowerCase() === "long";
  const perUnit: Decimal = long ? sub(m, e) : sub(e, m);
  const pnl = mul(perUnit, q);
  const notional = toNumber(mul(e, q));
  const pnlPct = notional !== 0 ? (toNumber(pnl) / Math.abs(notional)) * 100 : null;
  return { pnl: toPlainString(pnl), pnlPct };
}

/** The mid of a book's best bid and ask, exactly; null when a side is empty. */
export function midOf(bestBid: unknown, bestAsk: unknown): string | null {
  const b = parseDecimal(bestBid);
  const a = parseDecimal(bestAsk);
  if (!b || !a) return null;
  const sum = add(b, a);
  // Halving adds one decimal place: x/2 == x*5/10.
  return toPlainString({ units: sum.units * 5n, scale: sum.scale + 1 });
}
