// Where trading and the ML pipeline meet: the bot and its controls, money, positions, risk, breakers and
// recovery on one side; the production model, drift, retraining and the live signals on the other.
import { api, type BotStatus } from "../api";
import { usePoll } from "../hooks/usePoll";
import { useThrottled } from "../hooks/useThrottled";
import { bookMids } from "../live/extract";
import { useLiveMap, useOnReconnect, useTopic } from "../live/LiveContext";
import { BalancePanel } from "./overview/BalancePanel";
import { BotPanel } from "./overview/BotPanel";
import { BreakersPanel, RecoveryPanel } from "./overview/BreakersPanel";
import { DriftPanel } from "./overview/DriftPanel";
import { ModelPanel } from "./overview/ModelPanel";
import { PositionsPanel } from "./overview/PositionsPanel";
import { RetrainingPanel } from "./overview/RetrainingPanel";
import { RiskPanel } from "./overview/RiskPanel";
import { SignalsFeed } from "./overview/SignalsFeed";

const WEEK_MS = 7 * 86_400_000;

function isBotStatus(data: unknown): data is BotStatus {
  return !!data && typeof data === "object" && typeof (data as BotStatus).state === "string";
}

export function OverviewPage() {
  const bot = usePoll((s) => api.bot.status(s), 5_000);
  const balance = usePoll((s) => api.trading.balance(s), 10_000);
  const positions = usePoll((s) => api.trading.positions(s), 5_000);
  const risk = usePoll((s) => api.trading.riskStatus(s), 10_000);
  const breakers = usePoll((s) => api.monitoring.breakers(s), 10_000);
  const recovery = usePoll((s) => api.monitoring.recovery(s), 15_000);
  const production = usePoll((s) => api.ml.production(s), 30_000);
  const mlStatus = usePoll((s) => api.ml.status(s), 15_000);
  const drift = usePoll((s) => api.ml.driftHistory(Date.now() - WEEK_MS, s), 60_000);
  const retraining = usePoll((s) => api.ml.retraining(s), 60_000);
  const mids = useLiveMap("book", bookMids, 1_000);

  const tradingChanged = useThrottled(() => {
    positions.reload();
    balance.reload();
    risk.reload();
  }, 1_000);
  useTopic("bot", (data) => {
    // The topic carries the changing part of the status (state, pause, kill switch, holds): merged in.
    if (isBotStatus(data)) bot.setData((prev) => (prev ? { ...prev, ...data } : prev));
    else bot.reload();
  });
  useTopic("position", tradingChanged);
  useTopic("fill", tradingChanged);
  useTopic("model", () => {
    production.reload();
    mlStatus.reload();
  });
  useTopic("drift", () => {
    drift.reload();
    retraining.reload();
  });
  useTopic("health", () => {
    risk.reload();
    breakers.reload();
  });
  useOnReconnect(() => {
    for (const p of [bot, balance, positions, risk, breakers, recovery, production, mlStatus, drift, retraining]) p.reload();
  });

  return (
    <div className="page">
      <h1 className="page-title">Overview</h1>
      <div className="grid grid-overview">
        <BotPanel poll={bot} />
        <BalancePanel poll={balance} />
        <RiskPanel poll={risk} />
        <PositionsPanel poll={positions} mids={mids} />
        <SignalsFeed />
        <ModelPanel production={production} status={mlStatus} />
        <DriftPanel poll={drift} />
        <BreakersPanel poll={breakers} />
        <RetrainingPanel poll={retraining} />
        <RecoveryPanel poll={recovery} />
      </div>
    </div>
  );
}
