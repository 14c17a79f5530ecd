// Open positions marked to the live book mid, each with a Close button (trader) that confirms first.
import { useState } from "react";
import { api, type CloseResult, type Position } from "../../api";
import { useAuth } from "../../auth/AuthContext";
import { ConfirmDialog } from "../../components/Modal";
import { Badge, Notice, Panel } from "../../components/Panel";
import { AsyncView } from "../../components/States";
import type { Poll } from "../../hooks/usePoll";
import { parseDecimal } from "../../lib/decimal";
import { fmtMoney, fmtPct, fmtPrice, fmtQty, signClass } from "../../lib/format";
import { livePnl } from "../../lib/pnl";
import { sideTone } from "../../lib/tones";

function pnlOf(p: Position, mids: Record<string, string | number>) {
  const mid = mids[p.symbol] ?? p.mark_price;
  const live = livePnl(String(p.side), p.entry_price, p.quantity, mid);
  return { mark: mid, pnl: live?.pnl ?? p.unrealized_pnl, pct: live?.pnlPct ?? p.unrealized_pnl_pct };
}

/** Nothing filled yet (an entry still resting, status Opening): no size to mark or close at market. */
function isEmpty(p: Position): boolean {
  const qty = parseDecimal(p.quantity);
  return !qty || qty.units === 0n;
}

export function PositionsPanel({ poll, mids }: { poll: Poll<Position[]>; mids: Record<string, string | number> }) {
  const { can } = useAuth();
  const [closing, setClosing] = useState<Position | null>(null);
  const [result, setResult] = useState<{ kind: "ok" | "error"; text: string } | null>(null);
  const trader = can("trader");
  return (
    <Panel title="Open positions" testId="panel-positions" className="span-2">
      {result && (
        <Notice kind={result.kind} onClose={() => setResult(null)} testId="position-close-result">
          {result.text}
        </Notice>
      )}
      <AsyncView poll={poll} isEmpty={(rows) => rows.length === 0} emptyText="No open positions.">
        {(rows) => (
          <div className="table-wrap">
            <table className="table" data-testid="positions-table">
              <thead>
                <tr>
                  <th>Symbol</th>
                  <th>Side</th>
                  <th className="num">Qty</th>
                  <th className="num">Entry</th>
                  <th className="num">Mark</th>
                  <th className="num">PnL</th>
                  <th className="num">PnL %</th>
                  {trader && <th />}
                </tr>
              </thead>
              <tbody>
                {rows.map((p) => {
                  const { mark, pnl, pct } = pnlOf(p, mids);
                  return (
                    <tr key={p.symbol} data-testid={`position-row-${p.symbol}`}>
                      <td className="sym">{p.symbol}</td>
                      <td>
                        <Badge tone={sideTone(String(p.side))}>{p.side === "Buy" ? "Long" : "Short"}</Badge>
                        {p.status && p.status !== "Open" && (
                          <>
                            {" "}
                            <Badge title={isEmpty(p) ? "the entry order still works; nothing filled yet" : undefined}>
                              {p.status.toLowerCase()}
                            </Badge>
                          </>
                        )}
                      </td>
                      <td className="num">{fmtQty(p.quantity)}</td>
                      <td className="num">{isEmpty(p) ? "—" : fmtPrice(p.entry_price)}</td>
                      <td className="num">{fmtPrice(mark)}</td>
                      <td className={`num ${signClass(pnl)}`} data-testid={`position-pnl-${p.symbol}`}>
                        {fmtMoney(pnl, true)}
                      </td>
                      <td className={`num ${signClass(pct)}`}>{fmtPct(pct)}</td>
                      {trader && (
                        <td className="num">
                          {/* An empty position has nothing to close: its working entry is cancelled from Orders. */}
                          {!isEmpty(p) && (
                            <button type="button" className="btn btn-small btn-danger" onClick={() => setClosing(p)} data-testid={`position-close-${p.symbol}`}>
                              Close
                            </button>
                          )}
                        </td>
                      )}
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </AsyncView>
      {closing && (
        <ConfirmDialog
          title={`Close ${closing.symbol}?`}
          confirmLabel="Close at market"
          testId="confirm-close"
          onClose={() => setClosing(null)}
          onConfirm={async () => {
            const res: CloseResult = await api.trading.closePosition(closing.symbol);
            setResult({ kind: res.accepted ? "ok" : "error", text: `${closing.symbol}: ${res.message}` });
            poll.reload();
          }}
        >
          <p>
            A reduce-only market order closes {fmtQty(closing.quantity)} {closing.symbol} ({closing.side === "Buy" ? "long" : "short"}).
          </p>
          <p>
            Current PnL:{" "}
            <strong className={signClass(pnlOf(closing, mids).pnl)} data-testid="confirm-pnl">
              {fmtMoney(pnlOf(closing, mids).pnl, true)} ({fmtPct(pnlOf(closing, mids).pct)})
            </strong>
          </p>
        </ConfirmDialog>
      )}
    </Panel>
  );
}
