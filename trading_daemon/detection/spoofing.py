"""Spoofing: one large order near the touch that is pulled within seconds, never meant to trade.

Rule (docs/detection.md §2), for each large order the tracker saw leave the book:

* size: notional >= SPOOFING_MIN_NOTIONAL_USDT and >= SPOOFING_MIN_SIZE_MULTIPLE x the typical level;
* place: at most SPOOFING_MAX_DISTANCE_TICKS price steps behind the touch, never at it;
* life: gone within SPOOFING_MAX_TTL_S, in one message (a cancel; liquidity worn down by trades or by
  the slow cancels of many small orders leaves gradually);
* cancel rate: at least SPOOFING_CANCEL_RATE_THRESHOLD of its size left without trading.

Spoofers repeat: a spoof on the same side within SPOOFING_EPISODE_GAP_S of the last one extends that
detection (same `detection_id`), and each repeat raises its confidence.
"""

from __future__ import annotations

import math

import msgspec

from infra.settings import DetectionConfig
from schemas.detection import Detection, DetectionKind
from schemas.enums import Side
from trading_daemon.detection.orders import LargeOrder


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value))


class SpoofingDetector:
    """Judges one symbol's finished large orders; keeps the open episode of each side."""

    def __init__(self, symbol: str, config: DetectionConfig) -> None:
        self.symbol = symbol
        self.config = config
        self._open: dict[Side, tuple[Detection, list[LargeOrder]]] = {}

    def is_spoof(self, order: LargeOrder) -> bool:
        """Whether one finished order has every mark of a spoof."""
        c = self.config
        return (
            not order.lost
            and order.ended_ms is not None
            and order.abrupt
            and order.notional >= c.spoofing_min_notional_usdt
            and order.multiple >= c.spoofing_min_size_multiple
            and order.rank >= 1
            and order.distance_ticks <= c.spoofing_max_distance_ticks
            and order.lifetime_ms <= c.spoofing_max_ttl_s * 1000
            and order.cancelled_share >= c.spoofing_cancel_rate_threshold
        )

    def on_finished(self, order: LargeOrder, now_ms: int) -> Detection | None:
        """The new or extended detection if `order` is a spoof, else None."""
        if not self.is_spoof(order):
            return None
        assert order.ended_ms is not None  # is_spoof checked it
        gap_ms = self.config.spoofing_episode_gap_s * 1000
        current = self._open.get(order.side)
        if current is not None and order.placed_ms - current[0].end_ms <= gap_ms:
            previous, orders = current
            orders = [*orders, order]
            detection = msgspec.structs.replace(
                previous,
                price_low=min(previous.price_low, order.price),
                price_high=max(previous.price_high, order.price),
                end_ms=max(previous.end_ms, order.ended_ms),
                updated_ms=max(previous.updated_ms, now_ms),
                confidence=self._confidence(orders),
                evidence=self._evidence(orders),
            )
        else:
            orders = [order]
            detection = Detection(
                detection_id=f"{self.symbol}:spoofing:{order.side}:{order.placed_ms}",
                symbol=self.symbol,
                kind=DetectionKind.SPOOFING,
                side=order.side,
                price_low=order.price,
                price_high=order.price,
                start_ms=order.placed_ms,
                end_ms=order.ended_ms,
                detected_ms=max(now_ms, order.ended_ms),
                updated_ms=max(now_ms, order.ended_ms),
                confidence=self._confidence(orders),
                evidence=self._evidence(orders),
            )
        self._open[order.side] = (detection, orders)
        return detection

    def _confidence(self, orders: list[LargeOrder]) -> float:
        """0.5 for one order just at every threshold; up to 0.8 for one large (4x the size threshold),
        brief and untouched; +0.1 for each of the first two repeats."""
        c = self.config
        n = len(orders)
        size = (
            sum(_unit(math.log(o.multiple / c.spoofing_min_size_multiple) / math.log(4)) for o in orders) / n
        )
        brevity = sum(_unit(1 - o.lifetime_ms / (c.spoofing_max_ttl_s * 1000)) for o in orders) / n
        threshold = c.spoofing_cancel_rate_threshold
        cancelled = sum(_unit((o.cancelled_share - threshold) / max(1 - threshold, 1e-9)) for o in orders) / n
        repeats = min(n - 1, 2) / 2
        return round(_unit(0.5 + 0.15 * size + 0.1 * brevity + 0.05 * cancelled + 0.2 * repeats), 4)

    @staticmethod
    def _evidence(orders: list[LargeOrder]) -> dict[str, object]:
        cancelled = sum(o.size - o.filled for o in orders)
        return {
            "orders": [o.evidence() for o in orders[-20:]],  # the newest, should a spoofer go on for long
            "order_count": len(orders),
            "cancel_rate": round(cancelled / sum(o.size for o in orders), 4),
            "max_notional_usdt": round(max(o.notional for o in orders), 2),
        }
