"""Crafted order books for the detector tests: a calm book around 100.00 (tick 0.01, 50 levels a side of
10 units, so a typical level is $1,000) that a test changes message by message through the service's
`submit_book`, exactly as the feed would."""

from __future__ import annotations

import dataclasses

from infra.settings import DetectionConfig, code_defaults
from schemas.market import PublicTrade
from trading_daemon.detection import DetectionService

SYMBOL = "TESTUSDT"
T0 = 1_767_225_600_000
TICK = 0.01
LEVEL = 10.0
BEST_BID = 100.00
BEST_ASK = 100.01


def bid(rank: int) -> float:
    """The price `rank` levels behind the best bid (0: the best bid)."""
    return round(BEST_BID - rank * TICK, 2)


def ask(rank: int) -> float:
    return round(BEST_ASK + rank * TICK, 2)


def config(**overrides: object) -> DetectionConfig:
    return dataclasses.replace(code_defaults().detection, **overrides)


class CraftedMarket:
    """A service fed with a crafted book; `t` is the exchange clock (ms) of the next message."""

    def __init__(self, cfg: DetectionConfig | None = None) -> None:
        self.service = DetectionService(cfg or config(), [SYMBOL])
        self.t = T0
        self._trade_id = 0
        self.service.submit_book(
            SYMBOL,
            self.t,
            [(bid(r), LEVEL) for r in range(50)],
            [(ask(r), LEVEL) for r in range(50)],
            snapshot=True,
        )

    def book(
        self,
        bids: list[tuple[float, float]] = (),
        asks: list[tuple[float, float]] = (),
        *,
        after_ms: int = 20,
    ) -> None:  # type: ignore[assignment]
        """One delta `after_ms` after the previous message."""
        self.t += after_ms
        self.service.submit_book(SYMBOL, self.t, list(bids), list(asks), snapshot=False)

    def wait(self, ms: int, step_ms: int = 100) -> None:
        """Let time pass with empty book pushes (the clock moves on messages, as in the daemon)."""
        end = self.t + ms
        while self.t + step_ms <= end:
            self.book(after_ms=step_ms)

    def trade(self, price: float, size: float, taker: str) -> None:
        self._trade_id += 1
        self.service.submit_trades(
            [
                PublicTrade(
                    symbol=SYMBOL,
                    ts=self.t,
                    price=price,
                    size=size,
                    side=taker,
                    trade_id=f"t{self._trade_id}",
                )
            ]
        )

    def detections(self) -> list:  # type: ignore[type-arg]
        return self.service.detections(SYMBOL)
