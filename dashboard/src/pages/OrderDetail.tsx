// One order: its fields, fills and events, the position it belongs to, live PnL from the book's mid (the
// `book` topic), a candle chart of the pair with the entry marked, and Close (trader) with a confirmation
// that shows the PnL at that moment; the server's answer is shown after.
import { useCallback, useMemo, useState } from "react";
import { api, type CloseResult, type OrderDetail } from "../api";
import { useAuth } from "../auth/AuthContext";
import { CandleChart } from "../components/CandleChart";
import { ConfirmDialog, Modal } from "../components/Modal";
import { Badge, Notice, Stat } from "../components/Panel";
import { AsyncView, Empty, Loading } from "../components/States";
import { CANDLE_INTERVAL_MS, useCandles } from "../hooks/useCandles";
import { usePoll } from "../hooks/usePoll";
import { bookMids } from "../live/extract";
import { useLiveMap } from "../live/LiveContext";
import { pricePrecision, toBars, toMarkers, type MarkerInput } from "../lib/candles";
import { parseDecimal } from "../lib/decimal";
import { fmtMoney, fmtPct, fmtPrice, fmtQty, fmtTime, signClass, toNum } from "../lib/format";
import { livePnl } from "../lib/pnl";
import { ACTIVE_STATUSES, orderStatusTone, sideTone } from "../lib/tones";

/** PnL of the order's filled part at `mid` (the same definition as the server's live_pnl), else the server's. */
export function orderPnl(d: OrderDetail, mid: string | number | null | undefined) {
  const o = d.order;
  const live = livePnl(String(o.side), o.avg_fill_price, o.filled_quantity ?? "0", mid ?? d.mark_price);
  return { pnl: live?.pnl ?? d.live_pnl ?? null, pct: live?.pnlPct ?? d.live_pnl_pct ?? null, mark: mid ?? d.mark_price ?? null };
}

/** Whether Close can do something: cancel a working order, or close the open position a filled one opened. */
export function closable(d: OrderDetail): boolean {
  if (ACTIVE_STATUSES.has(String(d.order.status))) return true;
  const filled = parseDecimal(d.order.filled_quantity ?? "0");
  const p = d.position;
  return !!filled && filled.units > 0n && !!p && !p.closed_ms && p.status !== "Closed";
}

export function OrderDetailModal({ clientOrderId, onClose, onClosed }: { clientOrderId: string; onClose: () => void; onClosed: () => void }) {
  const detail = usePoll((s) => api.trading.order(clientOrderId, s), 5_000, [clientOrderId]);
  return (
    <Modal title={<span className="mono">{clientOrderId}</span>} onClose={onClose} wide testId="order-detail">
      <AsyncView poll={detail}>{(d) => <DetailBody detail={d} reload={detail.reload} onClosed={onClosed} />}</AsyncView>
    </Modal>
  );
}

function DetailBody({ detail, reload, onClosed }: { detail: OrderDetail; reload: () => void; onClosed: () => void }) {
  const { can } = useAuth();
  const o = detail.order;
  const extract = useCallback((data: unknown) => bookMids(data).filter(([s]) => s === o.symbol), [o.symbol]);
  const mids = useLiveMap("book", extract, 500);
  const { pnl, pct, mark } = orderPnl(detail, mids[o.symbol]);
  const [confirming, setConfirming] = useState(false);
  const [result, setResult] = useState<CloseResult | null>(null);
  const working = ACTIVE_STATUSES.has(String(o.status));
  // Once its position is closed an order's PnL at the mark means nothing: the position's realised PnL does.
  const positionClosed = !!detail.position && (detail.position.status === "Closed" || !!detail.position.closed_ms);

  return (
    <div className="detail">
      <div className="detail-head">
        <span className="sym big">{o.symbol}</span>
        <Badge tone={sideTone(String(o.side))}>{o.side}</Badge>
        <Badge tone={orderStatusTone(String(o.status))} testId="order-status">
          {String(o.status).replace("_", " ")}
        </Badge>
        {o.reduce_only && <Badge>reduce only</Badge>}
        <span className="spacer" />
        {can("trader") && closable(detail) && !result && (
          <button type="button" className="btn btn-danger" onClick={() => setConfirming(true)} data-testid="order-close">
            {working ? "Cancel order" : "Close position"}
          </button>
        )}
      </div>
      {result && (
        <Notice kind={result.accepted ? "ok" : "error"} onClose={() => setResult(null)} testId="close-result">
          {result.message}
          {/* The server's message usually names the final status already ("the exchange confirmed: Cancelled"). */}
          {result.status && !result.message.includes(result.status) ? ` (${result.status})` : ""}
        </Notice>
      )}
      <div className="stats">
        {positionClosed ? (
          <Stat label="Realised PnL" testId="order-realised-pnl">
            <span className={signClass(detail.position?.realized_pnl)}>{fmtMoney(detail.position?.realized_pnl, true)}</span>
          </Stat>
        ) : (
          <>
            <Stat label="Live PnL" testId="order-live-pnl">
              <span className={signClass(pnl)}>{pnl != null ? fmtMoney(pnl, true) : "—"}</span>
            </Stat>
            <Stat label="PnL %" testId="order-live-pnl-pct">
              <span className={signClass(pct)}>{fmtPct(pct)}</span>
            </Stat>
          </>
        )}
        <Stat label="Mark (mid)" testId="order-mark">{fmtPrice(mark)}</Stat>
        <Stat label="Type">
          {o.order_type ?? "—"} {o.time_in_force ?? ""}
        </Stat>
        <Stat label="Qty / filled">
          {fmtQty(o.quantity)} / {fmtQty(o.filled_quantity)}
        </Stat>
        <Stat label="Price">{o.price != null ? fmtPrice(o.price) : "market"}</Stat>
        <Stat label="Avg fill">{fmtPrice(o.avg_fill_price)}</Stat>
        <Stat label="Stop / take">
          {fmtPrice(o.stop_loss)} / {fmtPrice(o.take_profit)}
        </Stat>
        <Stat label="Strategy">{o.strategy ?? "—"}</Stat>
        <Stat label="Created">{fmtTime(o.created_ms)}</Stat>
      </div>
      {(o.reason || o.error_message) && (
        <p className={o.error_message ? "text-bad" : "muted"}>{o.error_message ?? o.reason}</p>
      )}
      <OrderChart detail={detail} />
      <div className="detail-cols">
        <div>
          <div className="sub-head">Fills</div>
          {detail.fills?.length ? (
            <table className="table compact" data-testid="order-fills">
              <thead>
                <tr>
                  <th>Time</th>
                  <th className="num">Price</th>
                  <th className="num">Qty</th>
                  <th className="num">Fee</th>
                  <th>Liquidity</th>
                </tr>
              </thead>
              <tbody>
                {detail.fills.map((f) => (
                  <tr key={f.exec_id}>
                    <td className="nowrap">{fmtTime(f.ts)}</td>
                    <td className="num">{fmtPrice(f.price)}</td>
                    <td className="num">{fmtQty(f.quantity)}</td>
                    <td className="num">{fmtMoney(f.fee)}</td>
                    <td>{f.is_maker ? "maker" : "taker"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <div className="muted">No fills.</div>
          )}
        </div>
        <div>
          <div className="sub-head">Events</div>
          {detail.events?.length ? (
            <ul className="timeline" data-testid="order-events">
              {detail.events.map((e, i) => (
                <li key={i}>
                  <span className="muted mono small">{fmtTime(e.ts)}</span> {e.from_status ? `${e.from_status} → ` : ""}
                  <strong>{e.to_status}</strong>
                  {e.reason && <span className="muted"> — {e.reason}</span>}
                </li>
              ))}
            </ul>
          ) : (
            <div className="muted">No events.</div>
          )}
          {detail.position && (
            <>
              <div className="sub-head">Position</div>
              <div className="muted">
                {detail.position.status} {fmtQty(detail.position.quantity)} @ {fmtPrice(detail.position.entry_price)}
                {detail.position.realized_pnl != null && <> · realised {fmtMoney(detail.position.realized_pnl, true)}</>}
              </div>
            </>
          )}
        </div>
      </div>
      {confirming && (
        <ConfirmDialog
          title={working ? `Cancel ${o.client_order_id}?` : `Close the ${o.symbol} position?`}
          confirmLabel={working ? "Cancel order" : "Close at market"}
          testId="confirm-close"
          onClose={() => setConfirming(false)}
          onConfirm={async () => {
            const res = await api.trading.closeOrder(o.client_order_id);
            setResult(res);
            reload();
            onClosed();
          }}
        >
          <p>{working ? "The order is cancelled on the exchange." : "A reduce-only market order closes the position this order opened."}</p>
          <p>
            Current PnL:{" "}
            <strong className={signClass(pnl)} data-testid="confirm-pnl">
              {pnl != null ? fmtMoney(pnl, true) : "—"} ({fmtPct(pct)})
            </strong>
          </p>
        </ConfirmDialog>
      )}
    </div>
  );
}

function OrderChart({ detail }: { detail: OrderDetail }) {
  const o = detail.order;
  const { candles, loading, error } = useCandles(o.symbol, 150);
  const bars = useMemo(() => toBars(candles), [candles]);
  const markers = useMemo(() => {
    const inputs: MarkerInput[] = [];
    const entryTs = detail.fills?.[0]?.ts ?? o.created_ms;
    if (entryTs) inputs.push({ ts: entryTs, kind: "entry", text: "entry", id: "entry" });
    for (const f of detail.fills?.slice(1) ?? []) inputs.push({ ts: f.ts, kind: "fill", text: fmtQty(f.quantity), id: f.exec_id });
    return toMarkers(inputs, bars, CANDLE_INTERVAL_MS);
  }, [detail.fills, o.created_ms, bars]);
  const entry = toNum(o.avg_fill_price ?? o.price);
  const priceLine = useMemo(() => (entry !== null ? { price: entry, title: "entry" } : null), [entry]);
  if (loading && !candles.length) return <Loading label="Loading candles…" />;
  if (!candles.length) return <Empty>{error ?? `No candles for ${o.symbol}.`}</Empty>;
  return <CandleChart bars={bars} markers={markers} precision={pricePrecision(candles)} priceLine={priceLine} height={240} testId="order-chart" />;
}
