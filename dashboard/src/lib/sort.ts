// Sorting of table rows whose cells are Decimal strings, numbers, text or missing. Numeric strings sort
// as numbers (exactly, via decimals), missing values always last whatever the direction.
import { compare, parseDecimal } from "./decimal";

export type Direction = "asc" | "desc";

export interface SortState<K extends string = string> {
  key: K;
  direction: Direction;
}

function isMissing(v: unknown): boolean {
  return v === null || v === undefined || v === "" || (typeof v === "number" && Number.isNaN(v));
}

/** Compare two cell values ascending; missing values compare as greater than anything. */
export function compareValues(a: unknown, b: unknown): number {
  const ma = isMissing(a);
  const mb = isMissing(b);
  if (ma || mb) return ma === mb ? 0 : ma ? 1 : -1;
  if (typeof a === "boolean" || typeof b === "boolean") return Number(a) - Number(b);
  const da = typeof a === "number" || typeof a === "string" ? parseDecimal(a) : null;
  const db = typeof b === "number" || typeof b === "string" ? parseDecimal(b) : null;
  if (da && db) return compare(da, db);
  return String(a).localeCompare(String(b), "en", { numeric: true, sensitivity: "base" });
}

/** A sorted copy; ties keep their input order. Missing values stay at the end in both directions. */
export function sortRows<T>(rows: readonly T[], get: (row: T) => unknown, direction: Direction): T[] {
  const sign = direction === "asc" ? 1 : -1;
  return rows
    .map((row, i) => ({ row, i, v: get(row) }))
    .sort((x, y) => {
      const mx = isMissing(x.v);
      const my = isMissing(y.v);
      if (mx || my) return mx === my ? x.i - y.i : mx ? 1 : -1;
      return sign * compareValues(x.v, y.v) || x.i - y.i;
    })
    .map((e) => e.row);
}

/** Clicking a header: the same column flips direction, a new one starts descending for numbers. */
export function nextSort<K extends string>(current: SortState<K>, key: K, firstDirection: Direction = "desc"): SortState<K> {
  if (current.key === key) return { key, direction: current.direction === "asc" ? "desc" : "asc" };
  return { key, direction: firstDirection };
}
