// Circuit breakers (reset: admin) and reconciliation (trigger: admin).
import { useState } from "react";
import { api, errorMessage, type CircuitBreaker, type RecoveryStatus } from "../../api";
import { useAuth } from "../../auth/AuthContext";
import { Badge, Notice, Panel, Stat } from "../../components/Panel";
import { AsyncView } from "../../components/States";
import type { Poll } from "../../hooks/usePoll";
import { fmtAgo, fmtAny } from "../../lib/format";
import { breakerTone } from "../../lib/tones";

export function BreakersPanel({ poll }: { poll: Poll<CircuitBreaker[]> }) {
  const { can } = useAuth();
  const [note, setNote] = useState<{ kind: "ok" | "error"; text: string } | null>(null);
  const reset = async (name: string) => {
    try {
      const res = await api.monitoring.resetBreaker(name);
      setNote({ kind: "ok", text: `${name}: ${res.previous_state} → ${res.breaker?.state ?? "closed"}` });
    } catch (err) {
      setNote({ kind: "error", text: errorMessage(err) });
    }
    poll.reload();
  };
  return (
    <Panel title="Circuit breakers" testId="panel-breakers">
      {note && (
        <Notice kind={note.kind} onClose={() => setNote(null)} testId="breaker-result">
          {note.text}
        </Notice>
      )}
      <AsyncView poll={poll} isEmpty={(b) => b.length === 0} emptyText="No circuit breakers registered yet.">
        {(breakers) => (
          <ul className="list" data-testid="breakers">
            {breakers.map((b) => (
              <li key={b.name} className="row-between" data-testid={`breaker-${b.name}`}>
                <span>
                  <Badge tone={breakerTone(b.state)}>{b.state}</Badge> {b.name}
                  <span className="muted">
                    {" "}
                    {b.failure_count ?? 0}/{b.failure_threshold ?? "?"} failures
                    {b.state !== "closed" && b.retry_after ? `, retry in ${b.retry_after.toFixed(0)} s` : ""}
                  </span>
                  {b.last_failure && <div className="muted small">{b.last_failure}</div>}
                </span>
                {can("admin") && b.state !== "closed" && (
                  <button type="button" className="btn btn-small" onClick={() => reset(b.name)} data-testid={`breaker-reset-${b.name}`}>
                    Reset
                  </button>
                )}
              </li>
            ))}
          </ul>
        )}
      </AsyncView>
    </Panel>
  );
}

export function RecoveryPanel({ poll }: { poll: Poll<RecoveryStatus> }) {
  const { can } = useAuth();
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState<{ kind: "ok" | "error"; text: string } | null>(null);
  const trigger = async () => {
    setBusy(true);
    try {
      const res = await api.monitoring.triggerRecovery();
      setNote({
        kind: res.success === false ? "error" : "ok",
        text: res.success === false ? `Reconciliation failed: ${res.error ?? "see the log"}` : `Reconciled: ${res.discrepancies ?? 0} discrepancies.`,
      });
    } catch (err) {
      setNote({ kind: "error", text: errorMessage(err) });
    } finally {
      setBusy(false);
      poll.reload();
    }
  };
  return (
    <Panel
      title="Recovery"
      testId="panel-recovery"
      actions={
        can("admin") ? (
          <button type="button" className="btn btn-small" disabled={busy} onClick={trigger} data-testid="recovery-trigger">
            {busy ? "Reconciling…" : "Reconcile now"}
          </button>
        ) : undefined
      }
    >
      {note && (
        <Notice kind={note.kind} onClose={() => setNote(null)} testId="recovery-result">
          {note.text}
        </Notice>
      )}
      <AsyncView poll={poll}>
        {(r) => {
          const last = r.last_reconciliation;
          const holds = Object.entries(r.holds ?? {});
          return (
            <>
              <div className="stats">
                <Stat label="Reconciled">{fmtAny(r.reconciled)}</Stat>
                <Stat label="Running">{fmtAny(r.running)}</Stat>
                <Stat label="Hanging orders">{fmtAny(r.hanging_orders)}</Stat>
                <Stat label="Last pass">
                  {last ? (
                    <>
                      <Badge tone={last.success ? "good" : "bad"}>{last.success ? "ok" : "failed"}</Badge> {fmtAgo(last.finished_ms || last.started_ms)}
                    </>
                  ) : (
                    "—"
                  )}
                </Stat>
              </div>
              {holds.length > 0 && <div className="notice notice-info">Holds: {holds.map(([k, v]) => `${k}: ${v}`).join("; ")}</div>}
            </>
          );
        }}
      </AsyncView>
    </Panel>
  );
}
