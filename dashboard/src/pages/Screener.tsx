// Every pair with its live metrics: the API's snapshot first, then each `metrics` message; sortable by
// every column, filterable by name.
import { useEffect, useMemo, useRef, useState } from "react";
import { api, type SymbolMetrics } from "../api";
import { SortHeader } from "../components/SortHeader";
import { AsyncView } from "../components/States";
import { usePoll } from "../hooks/usePoll";
import { metricsEntries } from "../live/extract";
import { useLiveMap, useOnReconnect } from "../live/LiveContext";
import { fmtBps, fmtCompact, fmtNum, fmtPct, fmtPrice, signClass, toNum } from "../lib/format";
import { nextSort, sortRows, type SortState } from "../lib/sort";

type Row = SymbolMetrics;
type Col = keyof Row & string;

const COLUMNS: Array<{ key: Col; label: string; fmt: (v: unknown) => string; signed?: boolean }> = [
  { key: "last_price", label: "Last", fmt: fmtPrice },
  { key: "change_24h_pct", label: "24h %", fmt: (v) => fmtPct(v), signed: true },
  { key: "mid", label: "Mid", fmt: fmtPrice },
  { key: "spread_bps", label: "Spread", fmt: (v) => fmtBps(v, 2) },
  { key: "imbalance_5", label: "Imb. 5", fmt: (v) => fmtNum(v, 3), signed: true },
  { key: "imbalance_total", label: "Imb. total", fmt: (v) => fmtNum(v, 3), signed: true },
  { key: "volume_1m", label: "Vol 1m", fmt: fmtCompact },
  { key: "trades_1m", label: "Trades 1m", fmt: (v) => fmtNum(v, 0) },
  { key: "volatility_1m_bps", label: "Vol. 1m", fmt: (v) => fmtBps(v, 1) },
  { key: "high_24h", label: "24h high", fmt: fmtPrice },
  { key: "low_24h", label: "24h low", fmt: fmtPrice },
  { key: "volume_24h", label: "24h volume", fmt: fmtCompact },
  { key: "turnover_24h", label: "24h turnover", fmt: fmtCompact },
];

async function loadScreener(signal: AbortSignal): Promise<Record<string, Row>> {
  // Pairs name every streamed symbol (even before its first analysis); metrics fill in the columns.
  const [pairs, metrics] = await Promise.all([api.data.pairs(signal), api.data.metrics(signal)]);
  const rows: Record<string, Row> = {};
  for (const p of pairs) rows[p.symbol] = { ...p, symbol: p.symbol } as Row;
  for (const [symbol, m] of Object.entries(metrics)) rows[symbol] = { ...rows[symbol], ...m, symbol };
  return rows;
}

export function ScreenerPage() {
  const poll = usePoll(loadScreener, 30_000);
  const live = useLiveMap("metrics", metricsEntries, 500);
  const [sort, setSort] = useState<SortState<Col>>({ key: "turnover_24h", direction: "desc" });
  const [filter, setFilter] = useState("");
  const previous = useRef<Record<string, number>>({});
  useOnReconnect(poll.reload);

  const rows = useMemo(() => {
    const merged: Record<string, Row> = { ...(poll.data ?? {}) };
    for (const [symbol, m] of Object.entries(live)) merged[symbol] = { ...merged[symbol], ...m, symbol };
    const q = filter.trim().toUpperCase();
    const list = Object.values(merged).filter((r) => !q || r.symbol.includes(q));
    return sortRows(list, (r) => (sort.key === "symbol" ? r.symbol : r[sort.key]), sort.direction);
  }, [poll.data, live, sort, filter]);

  // The direction of each last price since the previous rows, for the up/down tint; the memory of the
  // previous prices moves on in an effect so a double render (StrictMode) sees the same comparison.
  const ticks = useMemo(() => {
    const out: Record<string, string> = {};
    for (const r of rows) {
      const now = toNum(r.last_price);
      const before = previous.current[r.symbol];
      if (now !== null && before !== undefined && now !== before) out[r.symbol] = now > before ? "tick-up" : "tick-down";
    }
    return out;
  }, [rows]);
  useEffect(() => {
    for (const r of rows) {
      const now = toNum(r.last_price);
      if (now !== null) previous.current[r.symbol] = now;
    }
  }, [rows]);

  const onSort = (key: Col) => setSort((s) => nextSort(s, key, key === "symbol" ? "asc" : "desc"));

  return (
    <div className="page">
      <div className="page-head">
        <h1 className="page-title">Screener</h1>
        <input className="search" placeholder="Filter symbols" value={filter} onChange={(e) => setFilter(e.target.value)} data-testid="screener-filter" aria-label="Filter symbols" />
      </div>
      <AsyncView poll={poll} isEmpty={() => rows.length === 0} emptyText={filter ? "No pair matches the filter." : "No pairs yet: the daemon streams none."}>
        {() => (
          <div className="table-wrap panel">
            <table className="table table-sticky" data-testid="screener-table">
              <thead>
                <tr>
                  <SortHeader label="Symbol" column="symbol" sort={sort} onSort={onSort} testPrefix="screener" />
                  {COLUMNS.map((c) => (
                    <SortHeader key={c.key} label={c.label} column={c.key} sort={sort} onSort={onSort} numeric testPrefix="screener" />
                  ))}
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr key={r.symbol} data-testid={`screener-row-${r.symbol}`}>
                    <td className="sym">
                      {r.symbol}
                      {r.valid === false && <span className="muted small"> (resync)</span>}
                    </td>
                    {COLUMNS.map((c) => (
                      <td
                        key={c.key}
                        className={`num ${c.signed ? signClass(r[c.key]) : ""} ${c.key === "last_price" ? (ticks[r.symbol] ?? "") : ""}`}
                        data-testid={c.key === "last_price" ? `screener-last-${r.symbol}` : undefined}
                      >
                        {c.fmt(r[c.key])}
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </AsyncView>
    </div>
  );
}
