// A model's test-fold figures per horizon (models_ml.HorizonMetricsOut), optionally beside others.
import type { HorizonMetrics } from "../api";
import { fmtNum } from "../lib/format";

export const METRIC_COLUMNS: Array<{ key: keyof HorizonMetrics; label: string; better: "high" | "low" }> = [
  { key: "accuracy", label: "Accuracy", better: "high" },
  { key: "macro_f1", label: "Macro F1", better: "high" },
  { key: "log_loss", label: "Log loss", better: "low" },
  { key: "ece", label: "ECE", better: "low" },
];

export function MetricsTable({ metrics, testId }: { metrics: HorizonMetrics[] | undefined; testId?: string }) {
  if (!metrics?.length) return <div className="muted">No test-fold metrics recorded.</div>;
  return (
    <div className="table-wrap">
      <table className="table compact" data-testid={testId}>
        <thead>
          <tr>
            <th>Horizon</th>
            {METRIC_COLUMNS.map((c) => (
              <th key={c.key} className="num">
                {c.label}
              </th>
            ))}
            <th className="num">n</th>
          </tr>
        </thead>
        <tbody>
          {metrics.map((m) => (
            <tr key={m.horizon_s}>
              <td>{m.horizon_s} s</td>
              {METRIC_COLUMNS.map((c) => (
                <td key={c.key} className="num">
                  {fmtNum(m[c.key], 3)}
                </td>
              ))}
              <td className="num">{m.n?.toLocaleString("en-US") ?? "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
