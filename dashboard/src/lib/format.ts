// Display formatting. Values come as Decimal strings, numbers or nothing at all; every formatter
// answers "—" for a missing or unreadable value rather than "NaN".
import { parseDecimal, toPlainString, type Decimal } from "./decimal";

/** Decimal places for a float price by its magnitude. */
export function placesFor(price: number): number {
  const abs = Math.abs(price);
  return abs >= 1000 ? 2 : abs >= 10 ? 3 : abs >= 1 ? 4 : abs >= 0.01 ? 5 : 8;
}

export const DASH = "—";

function group(plain: string): string {
  const negative = plain.startsWith("-");
  const body = negative ? plain.slice(1) : plain;
  const [int = "0", frac] = body.split(".");
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${negative ? "-" : ""}${grouped}${frac !== undefined ? `.${frac}` : ""}`;
}

/** A Decimal with grouping; `dp` fixes the places, `maxDp` caps them (trailing zeros trimmed). */
export function fmtDec(value: unknown, opts: { dp?: number; maxDp?: number; sign?: boolean } = {}): string {
  const d = parseDecimal(value);
  if (!d) return DASH;
  let plain: string;
  if (opts.dp !== undefined) plain = toPlainString(d, opts.dp);
  else if (opts.maxDp !== undefined && d.scale > opts.maxDp) plain = trimZeros(toPlainString(d, opts.maxDp));
  else plain = toPlainString(d);
  const out = group(plain);
  return opts.sign && !out.startsWith("-") && !/^0(\.0*)?$/.test(plain) ? `+${out}` : out;
}

function trimZeros(plain: string): string {
  return plain.includes(".") ? plain.replace(/\.?0+$/, "") : plain;
}

/**
 * A price. A Decimal string is shown as the venue quoted it (at most 8 places); a float (market data:
 * books, candles, metrics) gets places by magnitude, so float noise such as 64982.1600548 never shows.
 */
export function fmtPrice(v: unknown): string {
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return DASH;
    const dp = placesFor(v);
    return fmtDec(String(v), { dp }); // exact decimal rounding of the shortest repr, not toFixed's binary one
  }
  return fmtDec(v, { maxDp: 8 });
}
/** Money in the account currency: two places. */
export const fmtMoney = (v: unknown, sign = false) => fmtDec(v, { dp: 2, sign });
/** A quantity, at most 8 places. */
export const fmtQty = (v: unknown) => fmtDec(v, { maxDp: 8 });

/** A large amount shortened: 1.23K, 4.56M, 7.89B. */
export function fmtCompact(value: unknown): string {
  const n = toNum(value);
  if (n === null) return DASH;
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (abs >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (abs >= 1e4) return `${(n / 1e3).toFixed(1)}K`;
  return n.toLocaleString("en-US", { maximumFractionDigits: 2 });
}

/** A float or numeric string as a number, or null. */
export function toNum(value: unknown): number | null {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value === "string" && value.trim() !== "") {
    const n = Number(value);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

/** `n` rounded to `dp` places, without the "-0.00" of a tiny negative. */
function fixed(n: number, dp: number): string {
  const text = n.toFixed(dp);
  return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text;
}

export function fmtNum(value: unknown, dp = 2): string {
  const n = toNum(value);
  if (n === null) return DASH;
  const text = n.toLocaleString("en-US", { minimumFractionDigits: dp, maximumFractionDigits: dp });
  return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text;
}

/** A percentage already in percent units (1.5 -> "+1.50%"). */
export function fmtPct(value: unknown, dp = 2, sign = true): string {
  const n = toNum(value);
  if (n === null) return DASH;
  const text = fixed(n, dp);
  return `${sign && n > 0 && Number(text) !== 0 ? "+" : ""}${text}%`;
}

export function fmtBps(value: unknown, dp = 1): string {
  const n = toNum(value);
  return n === null ? DASH : `${fixed(n, dp)} bps`;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

// Times are shown in UTC everywhere, as the daemon stores them and as the charts draw them.

/** UTC date and time of an epoch-ms timestamp: 2024-05-01 13:45:07. */
export function fmtTime(ms: unknown): string {
  const n = toNum(ms);
  if (n === null || n <= 0) return DASH;
  const d = new Date(n);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${fmtClock(n)}`;
}

/** UTC time of day: 13:45:07. */
export function fmtClock(ms: unknown): string {
  const n = toNum(ms);
  if (n === null || n <= 0) return DASH;
  const d = new Date(n);
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

export function fmtDuration(seconds: unknown): string {
  const s = toNum(seconds);
  if (s === null || s < 0) return DASH;
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${Math.floor(s % 60)}s`;
  return `${Math.floor(s)}s`;
}

export function fmtAgo(ms: unknown, now = Date.now()): string {
  const n = toNum(ms);
  if (n === null || n <= 0) return DASH;
  return `${fmtDuration(Math.max(0, (now - n) / 1000))} ago`;
}

/** A CSS class for a signed value: "pos", "neg" or "". */
export function signClass(value: unknown): string {
  const d: Decimal | null = parseDecimal(value);
  if (!d || d.units === 0n) return "";
  return d.units > 0n ? "pos" : "neg";
}

/** Any JSON-ish value as short text, for the loosely typed status panels. */
export function fmtAny(value: unknown): string {
  if (value === null || value === undefined || value === "") return DASH;
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(4).replace(/\.?0+$/, "");
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.length ? value.map(fmtAny).join(", ") : DASH;
  return JSON.stringify(value);
}

/** snake_case -> "Snake case" for column headers derived from keys. */
export function humanise(key: string): string {
  const s = key.replace(/_/g, " ").replace(/\bms\b/, "").trim();
  return s.charAt(0).toUpperCase() + s.slice(1);
}
