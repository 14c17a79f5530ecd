// The model registry: versions, their metrics side by side, one version's confusion matrices, loss curve
// and gate decisions, and the drift reports.
import { useEffect, useMemo, useState } from "react";
import { api, type HorizonMetrics, type ModelDetail, type ModelSummary } from "../api";
import { ConfusionMatrix } from "../components/ConfusionMatrix";
import { LineChart, type LineSeriesSpec } from "../components/LineChart";
import { METRIC_COLUMNS, MetricsTable } from "../components/MetricsTable";
import { Badge, Panel, Stat } from "../components/Panel";
import { SortHeader } from "../components/SortHeader";
import { AsyncView, Empty } from "../components/States";
import { usePoll } from "../hooks/usePoll";
import { useTopic } from "../live/LiveContext";
import { fmtNum, fmtTime } from "../lib/format";
import { nextSort, sortRows, type SortState } from "../lib/sort";
import { severityTone } from "../lib/tones";

const MAX_COMPARE = 4;
const STATUS_TONE: Record<string, string> = { production: "good", candidate: "info", archived: "neutral", rejected: "bad" };

type Col = "version" | "model_type" | "status" | "created_ms" | "promotion_value";
const COLUMNS: Array<{ key: Col; label: string; numeric?: boolean; get: (m: ModelSummary) => unknown }> = [
  { key: "version", label: "Version", get: (m) => m.version },
  { key: "model_type", label: "Type", get: (m) => m.model_type },
  { key: "status", label: "Status", get: (m) => m.status },
  { key: "created_ms", label: "Trained", numeric: true, get: (m) => m.created_ms },
  { key: "promotion_value", label: "Gate metric", numeric: true, get: (m) => m.promotion_value },
];

export function ModelsPage() {
  const models = usePoll((s) => api.ml.models(s), 60_000);
  const drift = usePoll((s) => api.ml.drift(s, 50), 60_000);
  const [sort, setSort] = useState<SortState<Col>>({ key: "created_ms", direction: "desc" });
  const [compare, setCompare] = useState<string[]>([]);
  const [focus, setFocus] = useState<string | null>(null);
  useTopic("model", models.reload);
  useTopic("drift", drift.reload);

  const rows = useMemo(() => {
    const col = COLUMNS.find((c) => c.key === sort.key)!;
    return sortRows(models.data ?? [], col.get, sort.direction);
  }, [models.data, sort]);

  // Until someone picks: the production version in focus and beside the newest other one.
  useEffect(() => {
    const list = models.data;
    if (!list?.length || focus) return;
    const prod = list.find((m) => m.status === "production") ?? list[0]!;
    setFocus(prod.version);
    const other = list.find((m) => m.version !== prod.version);
    setCompare(other ? [prod.version, other.version] : [prod.version]);
  }, [models.data, focus]);

  const toggleCompare = (v: string) =>
    setCompare((cur) => (cur.includes(v) ? cur.filter((x) => x !== v) : cur.length >= MAX_COMPARE ? cur : [...cur, v]));

  const byVersion = useMemo(() => new Map((models.data ?? []).map((m) => [m.version, m])), [models.data]);
  const compared = compare.map((v) => byVersion.get(v)).filter((m): m is ModelSummary => !!m);

  return (
    <div className="page">
      <h1 className="page-title">Models</h1>
      <Panel title="Versions" testId="panel-versions">
        <AsyncView poll={models} isEmpty={(m) => m.length === 0} emptyText="No model versions registered yet.">
          {() => (
            <div className="table-wrap">
              <table className="table table-hover" data-testid="models-table">
                <thead>
                  <tr>
                    <th title={`Compare up to ${MAX_COMPARE}`}>Compare</th>
                    {COLUMNS.map((c) => (
                      <SortHeader key={c.key} label={c.label} column={c.key} sort={sort} onSort={(k) => setSort((s) => nextSort(s, k))} numeric={c.numeric} testPrefix="models" />
                    ))}
                    <th>Data window</th>
                    <th>Horizons</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((m) => (
                    <tr key={m.version} className={`clickable ${focus === m.version ? "selected" : ""}`} onClick={() => setFocus(m.version)} data-testid={`model-row-${m.version}`}>
                      <td onClick={(e) => e.stopPropagation()}>
                        <input
                          type="checkbox"
                          checked={compare.includes(m.version)}
                          disabled={!compare.includes(m.version) && compare.length >= MAX_COMPARE}
                          onChange={() => toggleCompare(m.version)}
                          aria-label={`Compare ${m.version}`}
                          data-testid={`model-select-${m.version}`}
                        />
                      </td>
                      <td className="mono">{m.version}</td>
                      <td>{m.model_type ?? "—"}</td>
                      <td>
                        <Badge tone={STATUS_TONE[m.status ?? ""] ?? "neutral"}>{m.status ?? "—"}</Badge>
                      </td>
                      <td className="nowrap num">{fmtTime(m.created_ms)}</td>
                      <td className="num" title={m.promotion_metric}>
                        {fmtNum(m.promotion_value, 4)}
                      </td>
                      <td className="nowrap small">
                        {m.data_window ? `${fmtTime(m.data_window.start_ms).slice(0, 10)} → ${fmtTime(m.data_window.end_ms).slice(0, 10)}` : "—"}
                      </td>
                      <td className="small">{(m.horizons_s ?? []).map((h) => `${h}s`).join(" ") || "—"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </AsyncView>
      </Panel>
      {models.data && models.data.length > 0 && (
        <Panel title={`Side by side (${compared.length}/${MAX_COMPARE})`} testId="panel-compare">
          {compared.length === 0 ? <Empty>Tick versions above to compare them.</Empty> : <CompareTable models={compared} />}
        </Panel>
      )}
      {focus && <VersionDetail version={focus} />}
      <Panel title="Drift reports" testId="panel-drift-reports">
        <AsyncView poll={drift} isEmpty={(d) => d.length === 0} emptyText="No drift reports yet.">
          {(reports) => (
            <div className="table-wrap">
              <table className="table" data-testid="drift-table">
                <thead>
                  <tr>
                    <th>Window end</th>
                    <th>Symbol</th>
                    <th>Severity</th>
                    <th className="num">Feature drift</th>
                    <th className="num">Prediction PSI</th>
                    <th className="num">Accuracy drop</th>
                    <th>Model</th>
                    <th>Drivers / recommendation</th>
                  </tr>
                </thead>
                <tbody>
                  {reports.map((r) => (
                    <tr key={r.id} data-testid={`drift-row-${r.id}`}>
                      <td className="nowrap">{fmtTime(r.window_end_ms ?? r.created_ms)}</td>
                      <td className="sym">{r.symbol}</td>
                      <td>
                        <Badge tone={severityTone(r.severity)}>{r.severity}</Badge>
                      </td>
                      <td className="num">{fmtNum(r.feature_drift_score, 3)}</td>
                      <td className="num">{fmtNum(r.prediction_psi, 3)}</td>
                      <td className="num">{fmtNum(r.accuracy_drop, 3)}</td>
                      <td className="mono small">{r.production_version ?? "—"}</td>
                      <td className="reason">
                        {(r.drivers ?? []).join(", ")}
                        {r.recommendation && <div className="muted small">{r.recommendation}</div>}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </AsyncView>
      </Panel>
    </div>
  );
}

function metricAt(m: ModelSummary, horizon: number, key: keyof HorizonMetrics): number | null {
  const v = m.metrics?.find((x) => x.horizon_s === horizon)?.[key];
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** Rows horizon × metric, one column per version, the best value of each row marked. */
function CompareTable({ models }: { models: ModelSummary[] }) {
  const horizons = [...new Set(models.flatMap((m) => (m.metrics ?? []).map((x) => x.horizon_s)))].sort((a, b) => a - b);
  return (
    <div className="table-wrap">
      <table className="table compact" data-testid="compare-table">
        <thead>
          <tr>
            <th>Horizon</th>
            <th>Metric</th>
            {models.map((m) => (
              <th key={m.version} className="num mono">
                {m.version}
                <div className="muted small">{m.model_type}</div>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {horizons.flatMap((h) =>
            METRIC_COLUMNS.map((c, ci) => {
              const values = models.map((m) => metricAt(m, h, c.key));
              const present = values.filter((v): v is number => v !== null);
              const best = present.length > 1 ? (c.better === "high" ? Math.max(...present) : Math.min(...present)) : null;
              return (
                <tr key={`${h}-${c.key}`} className={ci === 0 ? "group-start" : ""}>
                  <td>{ci === 0 ? `${h} s` : ""}</td>
                  <td>{c.label}</td>
                  {values.map((v, i) => (
                    <td key={i} className={`num ${v !== null && v === best ? "best" : ""}`}>
                      {fmtNum(v, 4)}
                    </td>
                  ))}
                </tr>
              );
            }),
          )}
        </tbody>
      </table>
    </div>
  );
}

function lossSeries(d: ModelDetail): LineSeriesSpec[] {
  const curve = d.loss_curve;
  if (!curve) return [];
  const epochs = curve.epochs?.length ? curve.epochs : (curve.train_loss ?? []).map((_, i) => i + 1);
  const toPoints = (values: number[] | undefined) =>
    (values ?? []).flatMap((v, i) => (epochs[i] !== undefined && Number.isFinite(v) ? [{ time: epochs[i]!, value: v }] : []));
  return [
    { name: "train", color: "#42a5f5", points: toPoints(curve.train_loss) },
    { name: "validation", color: "#f0b90b", points: toPoints(curve.val_loss) },
  ].filter((s) => s.points.length > 0);
}

function VersionDetail({ version }: { version: string }) {
  const detail = usePoll((s) => api.ml.model(version, s), null, [version]);
  return (
    <Panel title={<>Version <span className="mono">{version}</span></>} testId="panel-version-detail">
      <AsyncView poll={detail}>
        {(d) => {
          const series = lossSeries(d);
          const classes = d.class_names ?? ["down", "flat", "up"];
          const matrices = (d.metrics ?? []).filter((m) => m.confusion_matrix?.length);
          const gate = d.gate_decisions ?? [];
          return (
            <div className="version-detail">
              <div className="stats">
                <Stat label="Type">{d.model_type ?? "—"}</Stat>
                <Stat label="Status">{d.status ?? "—"}</Stat>
                <Stat label="Run model">{d.run_model ?? "—"}</Stat>
                <Stat label="Train time">{d.train_seconds != null ? `${fmtNum(d.train_seconds, 0)} s` : "—"}</Stat>
                <Stat label="Train / val / test">
                  {d.data_window ? `${d.data_window.n_train ?? "?"} / ${d.data_window.n_validation ?? "?"} / ${d.data_window.n_test ?? "?"}` : "—"}
                </Stat>
                <Stat label="Parent">{d.parent_version ?? "—"}</Stat>
              </div>
              <div className="sub-head">Test-fold metrics</div>
              <MetricsTable metrics={d.metrics} testId="version-metrics" />
              {Object.entries(d.baselines ?? {}).length > 0 && (
                <details className="baselines">
                  <summary>Baselines on the same test fold</summary>
                  {Object.entries(d.baselines ?? {}).map(([name, rows]) => (
                    <div key={name}>
                      <div className="sub-head">{name}</div>
                      <MetricsTable metrics={rows} />
                    </div>
                  ))}
                </details>
              )}
              <div className="sub-head">Gate decision</div>
              {gate.length === 0 ? (
                <div className="muted" data-testid="gate-none">The gate has not judged this version.</div>
              ) : (
                <ul className="list" data-testid="gate-decisions">
                  {gate.map((g, i) => (
                    <li key={g.id ?? i} className={i > 0 ? "muted" : ""}>
                      <Badge tone={g.promoted ? "good" : "bad"} testId={i === 0 ? "gate-decision" : undefined}>
                        {g.promoted ? "promoted" : "refused"}
                      </Badge>{" "}
                      {g.metric} {fmtNum(g.candidate_value, 4)} [{fmtNum(g.candidate_low, 4)}, {fmtNum(g.candidate_high, 4)}]
                      {g.production_version && <> vs {g.production_version}</>} <span className="muted small">{fmtTime(g.decided_ms)}</span>
                      {g.reason && <div className="small">{g.reason}</div>}
                    </li>
                  ))}
                </ul>
              )}
              <div className="detail-cols">
                <div>
                  <div className="sub-head">Confusion matrices</div>
                  {matrices.length === 0 ? (
                    <div className="muted">{d.evidence_error ?? "No confusion matrices saved with this version."}</div>
                  ) : (
                    <div className="confusion-grid">
                      {matrices.map((m) => (
                        <ConfusionMatrix key={m.horizon_s} matrix={m.confusion_matrix!} classes={classes} title={`${m.horizon_s} s`} testId={`confusion-${m.horizon_s}`} />
                      ))}
                    </div>
                  )}
                </div>
                <div>
                  <div className="sub-head">
                    Loss curve
                    {d.loss_curve?.best_epoch != null && d.loss_curve.best_epoch >= 0 && (
                      <span className="muted small"> · best epoch {(d.loss_curve.epochs?.[d.loss_curve.best_epoch] ?? d.loss_curve.best_epoch + 1)}{d.loss_curve.stopped_early ? ", stopped early" : ""}</span>
                    )}
                  </div>
                  {series.length === 0 ? (
                    <div className="muted">No training history (a baseline model has none).</div>
                  ) : (
                    <>
                      <LineChart series={series} mode="index" height={200} formatValue={(v) => v.toFixed(4)} testId="loss-chart" />
                      <div className="legend">
                        {series.map((s) => (
                          <span key={s.name} className="legend-item">
                            <span className="swatch" style={{ background: s.color }} />
                            {s.name}
                          </span>
                        ))}
                      </div>
                    </>
                  )}
                </div>
              </div>
            </div>
          );
        }}
      </AsyncView>
    </Panel>
  );
}
