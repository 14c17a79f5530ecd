// Risk usage and every halt: the standing halts of the risk manager and the per-symbol health blocks.
import type { RiskStatus } from "../../api";
import { Badge, Panel, Stat } from "../../components/Panel";
import { AsyncView } from "../../components/States";
import type { Poll } from "../../hooks/usePoll";
import { fmtAny, fmtClock, fmtMoney, signClass } from "../../lib/format";

export function haltsOf(risk: RiskStatus): Array<{ symbol: string; rule: string; detail?: string }> {
  const out = new Map<string, { symbol: string; rule: string; detail?: string }>();
  for (const [symbol, rule] of Object.entries(risk.halted ?? {})) out.set(symbol, { symbol, rule: String(rule) });
  for (const [symbol, issue] of Object.entries(risk.health ?? {})) {
    if (issue) out.set(symbol, { symbol, rule: issue.rule, detail: issue.detail });
  }
  return [...out.values()];
}

export function RiskPanel({ poll }: { poll: Poll<RiskStatus> }) {
  return (
    <Panel title="Risk and health" testId="panel-risk">
      <AsyncView poll={poll}>
        {(risk) => {
          const halts = haltsOf(risk);
          const limits = risk.limits ?? {};
          const refusals = risk.recent_refusals ?? [];
          return (
            <>
              <div className="stats">
                <Stat label="Daily PnL" testId="risk-daily-pnl">
                  <span className={signClass(risk.daily_pnl_usdt)}>{fmtMoney(risk.daily_pnl_usdt, true)}</span>
                </Stat>
                <Stat label="Loss limit">{fmtMoney(limits.daily_loss_limit_usdt)}</Stat>
                <Stat label="Exposure">
                  {fmtMoney(risk.exposure_usdt)} / {fmtMoney(limits.max_exposure_usdt)}
                </Stat>
                <Stat label="Positions">
                  {fmtAny(risk.open_positions)} / {fmtAny(limits.max_open_positions)}
                </Stat>
                <Stat label="Approvals">{fmtAny(risk.approvals)}</Stat>
                <Stat label="Reconciled">{fmtAny(risk.reconciled)}</Stat>
              </div>
              <div className="sub-head">Halts</div>
              {halts.length === 0 ? (
                <div className="muted" data-testid="risk-no-halts">
                  No halts: every symbol may enter.
                </div>
              ) : (
                <ul className="list" data-testid="risk-halts">
                  {halts.map((h) => (
                    <li key={h.symbol}>
                      <Badge tone="bad">{h.symbol}</Badge> {h.rule}
                      {h.detail && <span className="muted"> — {h.detail}</span>}
                    </li>
                  ))}
                </ul>
              )}
              {refusals.length > 0 && (
                <>
                  <div className="sub-head">Recent refusals</div>
                  <ul className="list compact">
                    {refusals.slice(-5).reverse().map((r, i) => (
                      <li key={i}>
                        <span className="muted">{fmtClock(r.ts)}</span> {fmtAny(r.symbol)} <Badge tone="warn">{fmtAny(r.rule)}</Badge>{" "}
                        <span className="muted">{fmtAny(r.reason)}</span>
                      </li>
                    ))}
                  </ul>
                </>
              )}
            </>
          );
        }}
      </AsyncView>
    </Panel>
  );
}
