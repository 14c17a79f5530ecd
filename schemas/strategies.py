"""Per-strategy statistics: what the strategy manager counts, persists in `strategy_statistics` and serves.

Two kinds of evidence are kept per strategy (docs/strategies.md §5):

* **signals** and their **measured outcomes**: every new signal of a strategy, traded or not, is followed
  for the strategy's own horizon with its own take-profit and stop-loss on the mid (a "shadow" trade); the
  signed move it ends with, in bps before fees, is what the strategy's expected edge is estimated from;
* **trades**: positions the strategy took part in, with their PnL in USDT after fees, split by entry style
  (maker or taker), as execution reports them.

Money is `Decimal`, time integer milliseconds.
"""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec

CONSENSUS_SOURCE = "consensus"  # the pseudo-strategy under which consensus signals and trades are counted


class StrategyStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """The counters of one strategy (or of the consensus, under `CONSENSUS_SOURCE`)."""

    strategy: str
    enabled: bool = True
    signals: int = 0  # new signals sent (their expected edge covered the cost)
    signals_below_cost: int = 0  # new signals not sent: expected edge after fees below the minimum
    measured: int = 0  # shadow outcomes resolved
    measured_sum_bps: float = 0.0  # Σ signed mid move of those outcomes [bps, before fees]
    measured_sumsq_bps: float = 0.0  # Σ of its squares [bps²]
    measured_hits: int = 0  # outcomes with a positive move
    trades: int = 0
    wins: int = 0  # trades with net PnL > 0
    maker_trades: int = 0
    taker_trades: int = 0
    gross_pnl: Decimal = Decimal(0)  # USDT, before fees
    fees: Decimal = Decimal(0)  # USDT
    net_pnl: Decimal = Decimal(0)  # USDT, after fees
    maker_net_pnl: Decimal = Decimal(0)
    taker_net_pnl: Decimal = Decimal(0)
    last_trade_ms: int = 0  # when the newest trade counted here closed (0: none yet)
    updated_ms: int = 0

    def __post_init__(self) -> None:
        if not self.strategy:
            raise ValueError("StrategyStatistics: strategy is empty")
        for name in (
            "signals",
            "signals_below_cost",
            "measured",
            "measured_hits",
            "trades",
            "wins",
            "maker_trades",
            "taker_trades",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"StrategyStatistics {self.strategy}: {name} must be >= 0")
        if self.measured_hits > self.measured or self.wins > self.trades:
            raise ValueError(
                f"StrategyStatistics {self.strategy}: more hits than outcomes or wins than trades"
            )
        if self.maker_trades + self.taker_trades != self.trades:
            raise ValueError(f"StrategyStatistics {self.strategy}: maker + taker trades must equal trades")
        if not (math.isfinite(self.measured_sum_bps) and math.isfinite(self.measured_sumsq_bps)):
            raise ValueError(f"StrategyStatistics {self.strategy}: measured sums must be finite")

    @property
    def hit_rate(self) -> float | None:
        """Share of trades with net PnL > 0 (None before the first trade)."""
        return self.wins / self.trades if self.trades else None

    @property
    def measured_mean_bps(self) -> float | None:
        """Mean signed move after a signal [bps, before fees] (None before the first outcome)."""
        return self.measured_sum_bps / self.measured if self.measured else None

    @property
    def measured_hit_rate(self) -> float | None:
        return self.measured_hits / self.measured if self.measured else None
