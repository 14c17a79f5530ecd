// Drift severities as the ML pipeline names them (ml/drift.py), their order and colours.
export const SEVERITIES = ["none", "low", "medium", "high"] as const;

/** 0..3 for a known severity or a number already on that scale; null otherwise. */
export function severityLevel(value: unknown): number | null {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string") {
    const i = (SEVERITIES as readonly string[]).indexOf(value.toLowerCase());
    return i >= 0 ? i : null;
  }
  return null;
}

export function severityName(level: number): string {
  return SEVERITIES[Math.max(0, Math.min(3, Math.round(level)))] ?? String(level);
}

export function severityClass(value: unknown): string {
  const level = severityLevel(value);
  if (level === null) return "sev-unknown";
  return `sev-${severityName(level)}`;
}
