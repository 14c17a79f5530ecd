// Reading WebSocket payloads whose exact wrapping may vary: one record, a list, or a map by symbol.
import type { Fill, Order, Signal, SymbolMetrics } from "../api/types";
import { midOf } from "../lib/pnl";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === "object" && !Array.isArray(v);

function records(data: unknown): Obj[] {
  if (Array.isArray(data)) return data.filter(isObj);
  if (isObj(data)) {
    for (const key of ["items", "books", "metrics", "data"]) if (Array.isArray(data[key])) return records(data[key]);
    return [data];
  }
  return [];
}

/** [symbol, mid] from book messages ({symbol, mid} or {symbol, bids, asks}); a float mid stays a number. */
export function bookMids(data: unknown): Array<[string, string | number]> {
  const out: Array<[string, string | number]> = [];
  for (const b of records(data)) {
    const symbol = typeof b.symbol === "string" ? b.symbol : null;
    if (!symbol) continue;
    let mid: string | number | null = typeof b.mid === "number" || typeof b.mid === "string" ? b.mid : null;
    if (!mid && Array.isArray(b.bids) && Array.isArray(b.asks)) {
      const bid = (b.bids[0] as unknown[] | undefined)?.[0];
      const ask = (b.asks[0] as unknown[] | undefined)?.[0];
      mid = midOf(bid, ask);
    }
    if (mid) out.push([symbol, mid]);
  }
  return out;
}

/** [symbol, metrics] from a metrics message: one symbol's metrics, a list, or a map symbol -> metrics. */
export function metricsEntries(data: unknown): Array<[string, SymbolMetrics]> {
  if (isObj(data) && typeof data.symbol !== "string" && !Array.isArray(data.items)) {
    const inner = isObj(data.metrics) ? data.metrics : data;
    return Object.entries(inner)
      .filter(([, v]) => isObj(v))
      .map(([symbol, v]) => [symbol, { ...(v as unknown as SymbolMetrics), symbol }]);
  }
  return records(data)
    .filter((m) => typeof m.symbol === "string")
    .map((m) => [m.symbol as string, m as unknown as SymbolMetrics]);
}

function unwrap<T>(data: unknown, key: string, required: string): T[] {
  return records(isObj(data) && isObj(data[key]) ? data[key] : data).filter((r) => r[required] !== undefined) as T[];
}

export const signalsOf = (data: unknown) => unwrap<Signal>(data, "signal", "symbol");
export const fillsOf = (data: unknown) => unwrap<Fill>(data, "fill", "price");
export const ordersOf = (data: unknown) => unwrap<Order>(data, "order", "client_order_id");
