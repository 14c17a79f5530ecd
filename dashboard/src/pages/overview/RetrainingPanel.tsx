// The last retraining runs, each linked to its run in the Dagster UI.
import type { RetrainingRun } from "../../api";
import { Badge, Panel } from "../../components/Panel";
import { AsyncView } from "../../components/States";
import type { Poll } from "../../hooks/usePoll";
import { fmtNum, fmtTime } from "../../lib/format";

const STATUS_TONE: Record<string, string> = { promoted: "good", kept: "info", failed: "bad" };

export function RetrainingPanel({ poll }: { poll: Poll<RetrainingRun[]> }) {
  return (
    <Panel title="Retraining history" testId="panel-retraining" className="span-2">
      <AsyncView poll={poll} isEmpty={(r) => r.length === 0} emptyText="No retraining runs yet.">
        {(runs) => (
          <div className="table-wrap">
            <table className="table" data-testid="retraining-table">
              <thead>
                <tr>
                  <th>When</th>
                  <th>Trigger</th>
                  <th>Status</th>
                  <th>Candidate</th>
                  <th className="num">Candidate</th>
                  <th className="num">Production</th>
                  <th>Reason</th>
                  <th>Run</th>
                </tr>
              </thead>
              <tbody>
                {runs.map((r, i) => (
                  <tr key={r.id ?? r.dagster_run_id ?? i} data-testid={`retraining-row-${r.id ?? i}`}>
                    <td className="nowrap">{fmtTime(r.created_ms)}</td>
                    <td>{r.trigger}</td>
                    <td>
                      <Badge tone={STATUS_TONE[r.status] ?? "neutral"}>{r.status}</Badge>
                    </td>
                    <td className="mono small">{r.candidate_version ?? "—"}</td>
                    <td className="num" title={r.metric ?? undefined}>
                      {fmtNum(r.candidate_value, 4)}
                    </td>
                    <td className="num">{fmtNum(r.production_value, 4)}</td>
                    <td className="reason">{r.reason ?? "—"}</td>
                    <td>
                      {r.dagster_run_url ? (
                        <a href={r.dagster_run_url} target="_blank" rel="noopener noreferrer" data-testid={`dagster-link-${r.id ?? i}`}>
                          Dagster ↗
                        </a>
                      ) : (
                        "—"
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </AsyncView>
    </Panel>
  );
}
