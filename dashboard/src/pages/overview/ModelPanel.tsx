// The production model (and its shadow), what the gate serves now, and the reload control (admin).
import { useState } from "react";
import { api, errorMessage, type MlProduction, type MlStatus } from "../../api";
import { useAuth } from "../../auth/AuthContext";
import { MetricsTable } from "../../components/MetricsTable";
import { Badge, Notice, Panel, Stat } from "../../components/Panel";
import { AsyncView } from "../../components/States";
import type { Poll } from "../../hooks/usePoll";
import { fmtAgo, fmtNum, fmtPct } from "../../lib/format";

export function ModelPanel({ production, status }: { production: Poll<MlProduction>; status: Poll<MlStatus> }) {
  const { can } = useAuth();
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState<{ kind: "ok" | "error"; text: string } | null>(null);
  const reload = async () => {
    setBusy(true);
    try {
      const r = await api.ml.reload();
      const refused = Object.entries(r.refused ?? {});
      setNote({
        kind: refused.length ? "error" : "ok",
        text: r.changed
          ? `Now serving ${r.production ?? "no model"} (was ${r.production_before ?? "none"}).`
          : `Unchanged: serving ${r.production ?? "no model"}.` + (refused.length ? ` Refused: ${refused.map(([v, why]) => `${v} (${why})`).join("; ")}` : ""),
      });
    } catch (err) {
      setNote({ kind: "error", text: errorMessage(err) });
    } finally {
      setBusy(false);
      production.reload();
      status.reload();
    }
  };
  const s = status.data;
  return (
    <Panel
      title="Production model"
      testId="panel-model"
      actions={
        can("admin") ? (
          <button type="button" className="btn btn-small" disabled={busy} onClick={reload} data-testid="model-reload">
            {busy ? "Reloading…" : "Reload"}
          </button>
        ) : undefined
      }
    >
      {note && (
        <Notice kind={note.kind} onClose={() => setNote(null)} testId="model-reload-result">
          {note.text}
        </Notice>
      )}
      <AsyncView poll={production}>
        {(p) => {
          const m = p.production;
          if (!m) return <div className="muted" data-testid="model-none">No production model yet: the strategies trade alone.</div>;
          return (
            <>
              <div className="model-head">
                <span className="mono" data-testid="model-version">
                  {m.version}
                </span>
                <Badge tone="good">{m.model_type ?? "model"}</Badge>
                {p.serving && p.serving !== m.version && <Badge tone="warn">serving {p.serving}</Badge>}
                {s?.stale && <Badge tone="bad">stale</Badge>}
                {s?.fallback_reason && <Badge tone="warn" title={s.fallback_detail ?? undefined}>fallback: {s.fallback_reason}</Badge>}
              </div>
              <div className="stats">
                <Stat label="Trained">{fmtAgo(m.created_ms)}</Stat>
                <Stat label={m.promotion_metric ?? "Gate metric"}>{fmtNum(m.promotion_value, 4)}</Stat>
                <Stat label="Shadow">{p.shadow?.version ?? "—"}</Stat>
                <Stat label="Agreement">{s?.rates?.agreement_rate !== undefined ? fmtPct((s.rates.agreement_rate ?? 0) * 100, 1, false) : "—"}</Stat>
                <Stat label="Fallback rate">{s?.rates?.fallback_rate !== undefined ? fmtPct((s.rates.fallback_rate ?? 0) * 100, 1, false) : "—"}</Stat>
                <Stat label="Predictions">{s?.row_predictions?.toLocaleString("en-US") ?? "—"}</Stat>
              </div>
              <MetricsTable metrics={m.metrics} testId="model-metrics" />
            </>
          );
        }}
      </AsyncView>
    </Panel>
  );
}
