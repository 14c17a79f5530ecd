// Candle bookkeeping for the charts: merge a fresh page of klines into what a chart holds, keep at most
// a fixed number, and turn API candles and markers into what lightweight-charts draws.
import type { Candle } from "../api/types";
import { placesFor, toNum } from "./format";

export const MAX_CANDLES = 500;
export const MAX_MARKERS = 200;

/** Merge by open time (newer data wins), sorted ascending, trimmed to the newest `max`. */
export function mergeCandles(existing: readonly Candle[], incoming: readonly Candle[], max = MAX_CANDLES): Candle[] {
  const byTs = new Map<number, Candle>();
  for (const c of existing) byTs.set(c.ts, c);
  for (const c of incoming) if (typeof c?.ts === "number") byTs.set(c.ts, c);
  const merged = [...byTs.values()].sort((a, b) => a.ts - b.ts);
  return merged.length > max ? merged.slice(merged.length - max) : merged;
}

export interface Bar {
  time: number; // seconds, as lightweight-charts wants UTCTimestamp
  open: number;
  high: number;
  low: number;
  close: number;
}

/** Chart bars; a candle with an unreadable price is skipped rather than drawn at zero. */
export function toBars(candles: readonly Candle[]): Bar[] {
  const out: Bar[] = [];
  for (const c of candles) {
    const open = toNum(c.open);
    const high = toNum(c.high);
    const low = toNum(c.low);
    const close = toNum(c.close);
    if (open === null || high === null || low === null || close === null) continue;
    out.push({ time: Math.floor(c.ts / 1000), open, high, low, close });
  }
  return out;
}

export interface MarkerInput {
  ts: number; // ms
  kind: "buy" | "sell" | "entry" | "fill" | "info";
  text?: string;
  id?: string;
}

export interface ChartMarker {
  time: number;
  position: "aboveBar" | "belowBar" | "inBar";
  color: string;
  shape: "arrowUp" | "arrowDown" | "circle" | "square";
  text?: string;
  id?: string;
}

const MARKER_STYLE: Record<MarkerInput["kind"], Omit<ChartMarker, "time" | "text" | "id">> = {
  buy: { position: "belowBar", color: "#26a69a", shape: "arrowUp" },
  sell: { position: "aboveBar", color: "#ef5350", shape: "arrowDown" },
  entry: { position: "belowBar", color: "#f0b90b", shape: "arrowUp" },
  fill: { position: "inBar", color: "#42a5f5", shape: "circle" },
  info: { position: "aboveBar", color: "#9e9e9e", shape: "square" },
};

/**
 * Markers snapped to the open time of their candle (lightweight-charts only draws a marker on a bar that
 * exists), dropped when outside the drawn range, sorted by time and bounded in number.
 */
export function toMarkers(inputs: readonly MarkerInput[], bars: readonly Bar[], intervalMs: number, max = MAX_MARKERS): ChartMarker[] {
  if (!bars.length) return [];
  const first = bars[0]!.time;
  const last = bars[bars.length - 1]!.time;
  const step = Math.max(1, Math.floor(intervalMs / 1000));
  const out: ChartMarker[] = [];
  for (const m of inputs) {
    const t = Math.floor(m.ts / 1000 / step) * step;
    if (t < first || t > last) continue;
    out.push({ time: t, ...MARKER_STYLE[m.kind], text: m.text, id: m.id });
  }
  out.sort((a, b) => a.time - b.time);
  return out.length > max ? out.slice(out.length - max) : out;
}

/**
 * Decimal places for a chart's price axis: from the magnitude when prices are floats (their repr carries
 * binary noise), from the quoted places when they are Decimal strings; 2..8.
 */
export function pricePrecision(candles: readonly Candle[]): number {
  const last = candles[candles.length - 1];
  if (!last) return 2;
  if (typeof last.close === "number") return placesFor(last.close);
  let places = 2;
  for (const c of candles.slice(-50)) {
    for (const v of [c.open, c.high, c.low, c.close]) {
      const text = String(v).replace(/0+$/, "");
      const dot = text.indexOf(".");
      if (dot >= 0) places = Math.max(places, text.length - dot - 1);
    }
  }
  return Math.min(8, places);
}
