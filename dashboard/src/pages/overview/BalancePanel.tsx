import type { Balance } from "../../api";
import { Panel, Stat } from "../../components/Panel";
import { AsyncView } from "../../components/States";
import type { Poll } from "../../hooks/usePoll";
import { fmtAgo, fmtMoney, signClass } from "../../lib/format";

export function BalancePanel({ poll }: { poll: Poll<Balance> }) {
  return (
    <Panel title="Balance" testId="panel-balance">
      <AsyncView poll={poll}>
        {(b) => (
          <>
            <div className="big-figure" data-testid="balance-equity">
              {fmtMoney(b.equity)} <span className="unit">{b.currency ?? "USDT"}</span>
            </div>
            <div className="stats">
              <Stat label="Available" testId="balance-available">{fmtMoney(b.available)}</Stat>
              <Stat label="Unrealised PnL">
                <span className={signClass(b.unrealized_pnl)}>{fmtMoney(b.unrealized_pnl, true)}</span>
              </Stat>
              <Stat label="Realised today">
                <span className={signClass(b.realized_pnl_today)}>{fmtMoney(b.realized_pnl_today, true)}</span>
              </Stat>
              <Stat label="Updated">{fmtAgo(b.updated_ms)}</Stat>
            </div>
          </>
        )}
      </AsyncView>
    </Panel>
  );
}
