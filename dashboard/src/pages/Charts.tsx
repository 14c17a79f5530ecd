// Up to twelve 5-minute candle charts, three per row (one on a phone), chosen from the pair list on the
// left. Each chart marks the signals and fills of its pair; a deselected chart is removed (chart.remove()).
import { useCallback, useEffect, useMemo, useState } from "react";
import { api, type Fill, type Order, type Signal } from "../api";
import { CandleChart } from "../components/CandleChart";
import { Empty, ErrorBox, Loading } from "../components/States";
import { CANDLE_INTERVAL_MS, REFRESH_MS, useCandles } from "../hooks/useCandles";
import { usePoll } from "../hooks/usePoll";
import { fillsOf, signalsOf } from "../live/extract";
import { useTopic } from "../live/LiveContext";
import { MAX_MARKERS, pricePrecision, toBars, toMarkers, type MarkerInput } from "../lib/candles";
import { fmtPct, fmtPrice, signClass } from "../lib/format";

export const MAX_CHARTS = 12;
const STORAGE_KEY = "depthcharge.charts";

function loadSelection(): string[] | null {
  try {
    const raw = localStorage.getItem(STORAGE_KEY);
    const parsed = raw ? (JSON.parse(raw) as unknown) : null;
    return Array.isArray(parsed) ? parsed.filter((s): s is string => typeof s === "string").slice(0, MAX_CHARTS) : null;
  } catch {
    return null;
  }
}

export function ChartsPage() {
  const pairs = usePoll((s) => api.data.pairs(s), 60_000);
  const [selected, setSelected] = useState<string[] | null>(loadSelection);
  const [note, setNote] = useState<string | null>(null);
  const symbols = useMemo(() => (pairs.data ?? []).map((p) => p.symbol), [pairs.data]);

  // First visit: the first three pairs.
  useEffect(() => {
    if (selected === null && symbols.length) setSelected(symbols.slice(0, 3));
  }, [selected, symbols]);
  useEffect(() => {
    if (selected !== null) localStorage.setItem(STORAGE_KEY, JSON.stringify(selected));
  }, [selected]);

  const toggle = (symbol: string) => {
    setSelected((cur) => {
      const list = cur ?? [];
      if (list.includes(symbol)) {
        setNote(null);
        return list.filter((s) => s !== symbol);
      }
      if (list.length >= MAX_CHARTS) {
        setNote(`At most ${MAX_CHARTS} charts: deselect one first.`);
        return list;
      }
      return [...list, symbol];
    });
  };

  // A stored pick the daemon no longer streams is dropped from view (kept out of the grid).
  const shown = (selected ?? []).filter((s) => !pairs.data || symbols.includes(s));
  const full = shown.length >= MAX_CHARTS;

  return (
    <div className="page charts-page">
      <h1 className="page-title">Charts</h1>
      <div className="charts-layout">
        <aside className="pair-picker panel" data-testid="pair-picker">
          <div className="picker-head">
            <span>Pairs</span>
            <span className="muted small" data-testid="chart-count">
              {shown.length}/{MAX_CHARTS}
            </span>
          </div>
          {note && <div className="notice notice-info small" data-testid="chart-limit">{note}</div>}
          {pairs.data === undefined ? (
            pairs.error ? <ErrorBox message={pairs.error} onRetry={pairs.reload} /> : <Loading />
          ) : symbols.length === 0 ? (
            <Empty>No pairs streamed.</Empty>
          ) : (
            <ul className="picker-list">
              {(pairs.data ?? []).map((p) => {
                const on = shown.includes(p.symbol);
                return (
                  <li key={p.symbol}>
                    <label className={`picker-item ${on ? "on" : ""} ${!on && full ? "disabled" : ""}`}>
                      <input type="checkbox" checked={on} disabled={!on && full} onChange={() => toggle(p.symbol)} data-testid={`chart-pick-${p.symbol}`} />
                      <span className="sym">{p.symbol}</span>
                      <span className={`small ${signClass(p.change_24h_pct)}`}>{fmtPct(p.change_24h_pct)}</span>
                    </label>
                  </li>
                );
              })}
            </ul>
          )}
        </aside>
        <div className="chart-grid" data-testid="chart-grid">
          {shown.length === 0 ? (
            <Empty>Pick up to {MAX_CHARTS} pairs on the left.</Empty>
          ) : (
            shown.map((symbol) => <ChartCard key={symbol} symbol={symbol} onRemove={() => toggle(symbol)} />)
          )}
        </div>
      </div>
    </div>
  );
}

function signalMarker(s: Signal): MarkerInput | null {
  if (s.action !== "Buy" && s.action !== "Sell") return null;
  // Arrows only: with dozens of signals per chart, labels would cover the candles.
  return { ts: s.ts, kind: s.action === "Buy" ? "buy" : "sell", id: `s${s.id ?? s.ts}` };
}

function fillMarker(f: Fill): MarkerInput {
  return { ts: f.ts, kind: "fill", text: f.side === "Buy" ? "B" : "S", id: `f${f.exec_id}` };
}

function orderFillMarker(o: Order): MarkerInput | null {
  if (!o.avg_fill_price || !o.updated_ms || String(o.filled_quantity ?? "0").match(/^0*\.?0*$/)) return null;
  return { ts: o.updated_ms, kind: "fill", text: o.side === "Buy" ? "B" : "S", id: `o${o.client_order_id}` };
}

/** Marker inputs by id, the newest MAX_MARKERS kept. */
function addMarkers(cur: MarkerInput[], more: Array<MarkerInput | null>): MarkerInput[] {
  const byId = new Map(cur.map((m) => [m.id ?? `${m.ts}`, m]));
  for (const m of more) if (m) byId.set(m.id ?? `${m.ts}`, m);
  const all = [...byId.values()].sort((a, b) => a.ts - b.ts);
  return all.length > MAX_MARKERS ? all.slice(all.length - MAX_MARKERS) : all;
}

function ChartCard({ symbol, onRemove }: { symbol: string; onRemove: () => void }) {
  const { candles, loading, error } = useCandles(symbol);
  const [markers, setMarkers] = useState<MarkerInput[]>([]);

  // Past signals and fills from the API, refreshed with the candles; new ones from the socket at once.
  const loadMarkers = useCallback(
    async (signal: AbortSignal) => {
      const [signals, orders] = await Promise.all([
        api.trading.signals({ symbol, limit: 100 }, signal).catch(() => [] as Signal[]),
        api.trading.orders({ symbol, page_size: 50 }, signal).then((p) => p.items).catch(() => [] as Order[]),
      ]);
      setMarkers((cur) => addMarkers(cur, [...signals.map(signalMarker), ...orders.map(orderFillMarker)]));
      return true;
    },
    [symbol],
  );
  usePoll(loadMarkers, REFRESH_MS, [symbol]);
  useTopic("signal", (data) => {
    const mine = signalsOf(data).filter((s) => s.symbol === symbol);
    if (mine.length) setMarkers((cur) => addMarkers(cur, mine.map(signalMarker)));
  });
  useTopic("fill", (data) => {
    const mine = fillsOf(data).filter((f) => f.symbol === symbol);
    if (mine.length) setMarkers((cur) => addMarkers(cur, mine.map(fillMarker)));
  });

  const bars = useMemo(() => toBars(candles), [candles]);
  const chartMarkers = useMemo(() => toMarkers(markers, bars, CANDLE_INTERVAL_MS), [markers, bars]);
  const precision = useMemo(() => pricePrecision(candles), [candles]);
  const last = candles[candles.length - 1];

  return (
    <div className="chart-card panel" data-testid={`chart-${symbol}`}>
      <div className="chart-head">
        <span className="sym">{symbol}</span>
        <span className="mono">{last ? fmtPrice(last.close) : ""}</span>
        <span className="spacer" />
        <span className="muted small">5m</span>
        <button type="button" className="btn-icon" aria-label={`Remove ${symbol}`} onClick={onRemove} data-testid={`chart-remove-${symbol}`}>
          ×
        </button>
      </div>
      {error && !candles.length ? (
        <ErrorBox message={error} />
      ) : loading && !candles.length ? (
        <Loading />
      ) : !candles.length ? (
        <Empty>No candles for {symbol}.</Empty>
      ) : (
        <CandleChart bars={bars} markers={chartMarkers} precision={precision} height={240} />
      )}
      {error && candles.length > 0 && <div className="stale-banner">Refresh failed: {error}</div>}
    </div>
  );
}
