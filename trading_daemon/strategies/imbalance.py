"""Order-book imbalance (docs/strategies.md §2.1): buy when the bids hold most of the book's size and the
large resting orders are on the bid side too; sell on the mirror image.

Reads the analysis only (no candles): the imbalance at IMBALANCE_DEPTH levels and the clusters of
MIN_CLUSTER_VOLUME. Fixed stop and target in bps of the entry, and a short maximum hold: what the book
predicts is a move of seconds to a minute.
"""

from __future__ import annotations

from collections.abc import Sequence

from infra.settings import ImbalanceConfig
from schemas.market import Candle
from schemas.trading import Position, Signal
from trading_daemon.analysis.records import MarketAnalysis
from trading_daemon.strategies.base import Strategy, position_is_long


class ImbalanceStrategy(Strategy):
    """IMBALANCE_BUY_THRESHOLD / IMBALANCE_SELL_THRESHOLD on the book, clusters as confirmation."""

    name = "imbalance"

    def __init__(self, config: ImbalanceConfig) -> None:
        super().__init__(entry_style=config.entry_style, max_hold_s=config.max_hold_s)
        self.config = config

    def analyze(
        self, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position | None
    ) -> Signal | None:
        c = self.config
        if not analysis.valid:
            return None
        imbalance = analysis.imbalance(c.depth)
        bids, asks = analysis.bid_cluster_notional, analysis.ask_cluster_notional
        if imbalance >= c.buy_threshold:
            buy, excess = True, (imbalance - c.buy_threshold) / (1.0 - c.buy_threshold or 1.0)
            own, other = bids, asks
        elif imbalance <= c.sell_threshold:
            buy, excess = False, (c.sell_threshold - imbalance) / (c.sell_threshold or 1.0)
            own, other = asks, bids
        else:
            return None
        # Clusters confirm: the side the imbalance favours must hold at least MIN_CLUSTER_VOLUME in large
        # levels, and no more of them may rest against the trade than behind it.
        if own < c.min_cluster_volume or other > own:
            return None
        price = self.entry_price(analysis, buy)
        sign = 1 if buy else -1
        return self.entry(
            analysis,
            buy,
            strength=abs(2 * imbalance - 1),
            confidence=0.5 + 0.5 * excess,
            stop_loss=price * (1 - sign * c.stop_loss_bps / 1e4),
            take_profit=price * (1 + sign * c.take_profit_bps / 1e4),
            reason=(
                f"imbalance_{c.depth} {imbalance:.3f} {'>=' if buy else '<='} "
                f"{c.buy_threshold if buy else c.sell_threshold}, clusters {own:.0f} vs {other:.0f} USDT"
            ),
            indicators={
                "imbalance": imbalance,
                "own_cluster_notional": own,
                "opposing_cluster_notional": other,
                "spread_bps": analysis.spread_bps,
            },
        )

    def exit_signal(
        self, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position
    ) -> Signal | None:
        c = self.config
        long = position_is_long(position)
        entry = float(position.entry_price)
        sign = 1 if long else -1
        stop = float(position.stop_loss) if position.stop_loss else entry * (1 - sign * c.stop_loss_bps / 1e4)
        target = (
            float(position.take_profit)
            if position.take_profit
            else entry * (1 + sign * c.take_profit_bps / 1e4)
        )
        if analysis.valid:
            exit_ = self.price_exit(analysis, position, stop, target)
            if exit_ is not None:
                return exit_
            imbalance = analysis.imbalance(c.depth)
            if imbalance <= c.sell_threshold if long else imbalance >= c.buy_threshold:
                return self.exit(
                    analysis,
                    position,
                    "reversal",
                    f"imbalance_{c.depth} {imbalance:.3f} turned against the {'long' if long else 'short'}",
                    imbalance=imbalance,
                )
        return self.max_hold_exit(analysis, position)
