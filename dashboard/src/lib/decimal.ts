// Exact decimal arithmetic on the strings the API sends (Python Decimal), on BigInt: enough to format
// money and to compute a position's PnL without binary-float error. Division is left to floats, and only
// for ratios shown to a person (PnL %).

export interface Decimal {
  /** value = units / 10^scale */
  units: bigint;
  scale: number;
}

const DEC_RE = /^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** Parse a Decimal string or a finite number; null for anything else (empty, NaN, "None"). */
export function parseDecimal(value: unknown): Decimal | null {
  if (value === null || value === undefined) return null;
  let text: string;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return null;
    text = String(value);
  } else if (typeof value === "string") {
    text = value.trim();
  } else if (typeof value === "bigint") {
    return { units: value, scale: 0 };
  } else {
    return null;
  }
  const m = DEC_RE.exec(text);
  if (!m) return null;
  const [, sign, intPart = "", fracPart = "", expPart] = m;
  if (!intPart && !fracPart) return null;
  let units = BigInt((intPart || "0") + fracPart);
  let scale = fracPart.length - (expPart ? Number(expPart) : 0);
  if (scale < 0) {
    units *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { units: sign === "-" ? -units : units, scale };
}

function align(a: Decimal, b: Decimal): [bigint, bigint, number] {
  const scale = Math.max(a.scale, b.scale);
  return [a.units * 10n ** BigInt(scale - a.scale), b.units * 10n ** BigInt(scale - b.scale), scale];
}

export function add(a: Decimal, b: Decimal): Decimal {
  const [x, y, scale] = align(a, b);
  return { units: x + y, scale };
}

export function sub(a: Decimal, b: Decimal): Decimal {
  const [x, y, scale] = align(a, b);
  return { units: x - y, scale };
}

export function mul(a: Decimal, b: Decimal): Decimal {
  return { units: a.units * b.units, scale: a.scale + b.scale };
}

export function neg(a: Decimal): Decimal {
  return { units: -a.units, scale: a.scale };
}

export function compare(a: Decimal, b: Decimal): number {
  const [x, y] = align(a, b);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function isZero(a: Decimal): boolean {
  return a.units === 0n;
}

/** Round half away from zero to `dp` decimal places. */
export function round(a: Decimal, dp: number): Decimal {
  if (a.scale <= dp) return a;
  const drop = 10n ** BigInt(a.scale - dp);
  const negative = a.units < 0n;
  const abs = negative ? -a.units : a.units;
  let q = abs / drop;
  if ((abs % drop) * 2n >= drop) q += 1n;
  return { units: negative ? -q : q, scale: dp };
}

/** Plain digits, exactly `dp` places when given, else the natural scale with trailing zeros trimmed. */
export function toPlainString(a: Decimal, dp?: number): string {
  let d = dp === undefined ? a : round(a, dp);
  if (dp !== undefined && d.scale < dp) d = { units: d.units * 10n ** BigInt(dp - d.scale), scale: dp };
  const negative = d.units < 0n;
  let digits = (negative ? -d.units : d.units).toString();
  if (d.scale > 0) {
    digits = digits.padStart(d.scale + 1, "0");
    let int = digits.slice(0, -d.scale);
    let frac = digits.slice(-d.scale);
    if (dp === undefined) frac = frac.replace(/0+$/, "");
    int = int || "0";
    digits = frac ? `${int}.${frac}` : int;
  }
  const isZeroValue = /^0(\.0*)?$/.test(digits);
  return negative && !isZeroValue ? `-${digits}` : digits;
}

export function toNumber(a: Decimal): number {
  return Number(toPlainString(a));
}
