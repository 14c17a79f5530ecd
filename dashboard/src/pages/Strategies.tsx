// Each strategy's state and statistics, the consensus beside them; enable/disable for admins.
import { useMemo, useState } from "react";
import { api, errorMessage, type Strategy } from "../api";
import { useAuth } from "../auth/AuthContext";
import { Badge, Notice, Panel, Stat } from "../components/Panel";
import { SortHeader } from "../components/SortHeader";
import { AsyncView } from "../components/States";
import { usePoll } from "../hooks/usePoll";
import { fmtAgo, fmtBps, fmtMoney, fmtNum, fmtPct, signClass } from "../lib/format";
import { nextSort, sortRows, type SortState } from "../lib/sort";

type Col = "name" | "enabled" | "weight" | "entry_style" | "signals" | "trades" | "hit_rate" | "measured_mean_bps" | "gross_pnl" | "fees" | "net_pnl" | "failures" | "last_trade_ms";

const COLUMNS: Array<{ key: Col; label: string; numeric?: boolean; get: (s: Strategy) => unknown }> = [
  { key: "name", label: "Strategy", get: (s) => s.name },
  { key: "enabled", label: "State", get: (s) => s.enabled },
  { key: "weight", label: "Weight", numeric: true, get: (s) => s.weight },
  { key: "entry_style", label: "Entry", get: (s) => s.entry_style },
  { key: "signals", label: "Signals", numeric: true, get: (s) => s.statistics?.signals },
  { key: "trades", label: "Trades", numeric: true, get: (s) => s.statistics?.trades },
  { key: "hit_rate", label: "Hit rate", numeric: true, get: (s) => s.hit_rate ?? s.statistics?.hit_rate },
  { key: "measured_mean_bps", label: "Mean move", numeric: true, get: (s) => s.measured_mean_bps ?? s.statistics?.measured_mean_bps },
  { key: "gross_pnl", label: "Gross PnL", numeric: true, get: (s) => s.statistics?.gross_pnl },
  { key: "fees", label: "Fees", numeric: true, get: (s) => s.statistics?.fees },
  { key: "net_pnl", label: "Net PnL", numeric: true, get: (s) => s.statistics?.net_pnl },
  { key: "failures", label: "Failures", numeric: true, get: (s) => s.failures },
  { key: "last_trade_ms", label: "Last trade", numeric: true, get: (s) => s.statistics?.last_trade_ms || null },
];

const ratio = (v: number | null | undefined) => (v == null ? "—" : fmtPct(v * 100, 1, false));

export function StrategiesPage() {
  const { can } = useAuth();
  const poll = usePoll((s) => api.strategies.overview(s), 10_000);
  const [sort, setSort] = useState<SortState<Col>>({ key: "net_pnl", direction: "desc" });
  const [busy, setBusy] = useState<string | null>(null);
  const [note, setNote] = useState<{ kind: "ok" | "error"; text: string } | null>(null);
  const admin = can("admin");

  const rows = useMemo(() => {
    const col = COLUMNS.find((c) => c.key === sort.key)!;
    return sortRows(poll.data?.strategies ?? [], col.get, sort.direction);
  }, [poll.data, sort]);

  const toggle = async (s: Strategy) => {
    setBusy(s.name);
    try {
      const res = s.enabled ? await api.strategies.disable(s.name) : await api.strategies.enable(s.name);
      const now = res.strategy?.enabled ?? !s.enabled;
      setNote({ kind: "ok", text: `${s.name} ${now ? "enabled" : "disabled"}${res.changed ? "" : " (unchanged)"}.` });
      poll.setData((prev) => prev && { ...prev, strategies: prev.strategies.map((x) => (x.name === s.name && res.strategy ? res.strategy : x)) });
    } catch (err) {
      setNote({ kind: "error", text: errorMessage(err) });
    } finally {
      setBusy(null);
      poll.reload();
    }
  };

  return (
    <div className="page">
      <h1 className="page-title">Strategies</h1>
      {note && (
        <Notice kind={note.kind} onClose={() => setNote(null)} testId="strategy-result">
          {note.text}
        </Notice>
      )}
      <AsyncView poll={poll} isEmpty={(d) => d.strategies.length === 0} emptyText="No strategies configured.">
        {(d) => (
          <>
            <Panel title="Consensus" testId="panel-consensus">
              <div className="stats">
                <Stat label="Mode">{d.consensus_mode ?? "—"}</Stat>
                <Stat label="Min strategies">{d.min_strategies ?? "—"}</Stat>
                <Stat label="Min confidence">{fmtNum(d.min_consensus_confidence, 2)}</Stat>
                <Stat label="Min edge">{fmtBps(d.min_expected_edge_bps, 1)}</Stat>
                <Stat label="Fees (taker/maker)">
                  {fmtNum(d.taker_fee_bps, 1)} / {fmtNum(d.maker_fee_bps, 1)} bps
                </Stat>
                <Stat label="Consensus rate">{ratio(d.consensus_rate)}</Stat>
                <Stat label="Consensus trades">{d.consensus?.trades ?? "—"}</Stat>
                <Stat label="Consensus net PnL">
                  <span className={signClass(d.consensus?.net_pnl)}>{fmtMoney(d.consensus?.net_pnl, true)}</span>
                </Stat>
              </div>
            </Panel>
            <div className="table-wrap panel">
              <table className="table" data-testid="strategies-table">
                <thead>
                  <tr>
                    {COLUMNS.map((c) => (
                      <SortHeader key={c.key} label={c.label} column={c.key} sort={sort} onSort={(k) => setSort((s) => nextSort(s, k, k === "name" ? "asc" : "desc"))} numeric={c.numeric} testPrefix="strategies" />
                    ))}
                    {admin && <th />}
                  </tr>
                </thead>
                <tbody>
                  {rows.map((s) => {
                    const st = s.statistics ?? {};
                    return (
                      <tr key={s.name} data-testid={`strategy-row-${s.name}`}>
                        <td className="sym">{s.name}</td>
                        <td>
                          <Badge tone={s.enabled ? "good" : "neutral"} testId={`strategy-state-${s.name}`}>
                            {s.enabled ? "enabled" : "disabled"}
                          </Badge>
                        </td>
                        <td className="num">{fmtNum(s.weight, 2)}</td>
                        <td>{s.entry_style ?? "—"}</td>
                        <td className="num">{st.signals ?? "—"}</td>
                        <td className="num">
                          {st.trades ?? "—"}
                          {st.trades ? <span className="muted small"> ({st.wins ?? 0} won)</span> : null}
                        </td>
                        <td className="num">{ratio(s.hit_rate ?? st.hit_rate)}</td>
                        <td className={`num ${signClass(s.measured_mean_bps ?? st.measured_mean_bps)}`}>{fmtBps(s.measured_mean_bps ?? st.measured_mean_bps, 2)}</td>
                        <td className={`num ${signClass(st.gross_pnl)}`}>{fmtMoney(st.gross_pnl, true)}</td>
                        <td className="num">{fmtMoney(st.fees)}</td>
                        <td className={`num ${signClass(st.net_pnl)}`}>{fmtMoney(st.net_pnl, true)}</td>
                        <td className="num">{s.failures ?? 0}</td>
                        <td className="nowrap">{st.last_trade_ms ? fmtAgo(st.last_trade_ms) : "—"}</td>
                        {admin && (
                          <td className="num">
                            <button type="button" className={`btn btn-small ${s.enabled ? "" : "btn-primary"}`} disabled={busy === s.name} onClick={() => toggle(s)} data-testid={`strategy-toggle-${s.name}`}>
                              {s.enabled ? "Disable" : "Enable"}
                            </button>
                          </td>
                        )}
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          </>
        )}
      </AsyncView>
    </div>
  );
}
