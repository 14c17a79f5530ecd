"""Layering: several similar large orders stacked near each other on one side, placed and cancelled together.

Rule (docs/detection.md §3), evaluated when a large order has left the book and its companions have had
LAYERING_CANCEL_WINDOW_S to leave too:

* members: large orders of one side, each >= LAYERING_MIN_ORDER_NOTIONAL_USDT and >=
  LAYERING_MIN_SIZE_MULTIPLE x the typical level, behind the touch (the nearest of them at most
  LAYERING_MAX_DISTANCE_TICKS price steps behind it), gone in one message;
* one by one: each placed in a push of its own (several similar levels appearing in one push are the
  book refilling after a sweep, not an actor stacking orders), all within LAYERING_MAX_PLACEMENT_S;
* together: gone within
  LAYERING_CANCEL_WINDOW_S of each other, neighbours at most LAYERING_MAX_GAP_TICKS price steps apart
  (the step is the smallest gap the book has shown between two levels);
* similar: each within LAYERING_SIZE_TOLERANCE of the layer's median size;
* at least LAYERING_MIN_ORDERS of them, the whole layer gone within LAYERING_MAX_TTL_S of its first
  order, with at least LAYERING_CANCEL_RATE_THRESHOLD of its volume cancelled rather than traded.

Trades on the other side while the layer rested (the layerer's real business) raise the confidence; they
are not required.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from infra.settings import DetectionConfig
from schemas.detection import Detection, DetectionKind
from trading_daemon.detection.orders import LargeOrder


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value))


class LayeringDetector:
    """Finds layers among one symbol's finished large orders."""

    def __init__(self, symbol: str, config: DetectionConfig) -> None:
        self.symbol = symbol
        self.config = config

    def qualifies(self, order: LargeOrder) -> bool:
        """Whether one finished order may be part of a layer."""
        c = self.config
        return (
            not order.lost
            and order.ended_ms is not None
            and order.abrupt
            and order.notional >= c.layering_min_order_notional_usdt
            and order.multiple >= c.layering_min_size_multiple
            and order.rank >= 1
        )

    def find(self, order: LargeOrder, pool: Sequence[LargeOrder], tick: float) -> list[LargeOrder]:
        """The layer `order` belongs to among `pool` (finished orders, `order` included), or [] if none;
        `tick` is the symbol's price step (neighbours are at most LAYERING_MAX_GAP_TICKS of it apart)."""
        c = self.config
        if not self.qualifies(order) or order.ended_ms is None:
            return []
        window_ms = c.layering_cancel_window_s * 1000
        placement_ms = c.layering_max_placement_s * 1000
        mates = [
            o
            for o in pool
            if o.side is order.side
            and o.ended_ms is not None
            and abs(o.ended_ms - order.ended_ms) <= window_ms
            and abs(o.placed_ms - order.placed_ms) <= placement_ms
            and self.qualifies(o)
        ]
        layer = self._neighbours(order, mates, tick)
        median = statistics.median(o.size for o in layer)
        similar = [o for o in layer if abs(o.size - median) <= c.layering_size_tolerance * median]
        if not any(o is order for o in similar):
            return []
        layer = self._neighbours(order, similar, tick)  # still a chain without the odd ones out
        if len(layer) < c.layering_min_orders:
            return []
        if min(o.distance_ticks for o in layer) > c.layering_max_distance_ticks:
            return []
        if len({o.placed_ms for o in layer}) < len(layer):
            return []  # levels that appear in one push are the book refilling (after a sweep), not a layerer
        start = min(o.placed_ms for o in layer)
        end = max(o.ended_ms or 0 for o in layer)
        if (
            end - start > c.layering_max_ttl_s * 1000
            or max(o.placed_ms for o in layer) - start > placement_ms
        ):
            return []
        size = sum(o.size for o in layer)
        if sum(o.size - o.filled for o in layer) / size < c.layering_cancel_rate_threshold:
            return []
        return sorted(layer, key=lambda o: o.price)

    def _neighbours(self, order: LargeOrder, mates: list[LargeOrder], tick: float) -> list[LargeOrder]:
        """The chain of `mates` around `order` whose neighbouring prices are at most the gap apart."""
        by_price = sorted(mates, key=lambda o: o.price)
        index = next(i for i, o in enumerate(by_price) if o is order)
        gap = (self.config.layering_max_gap_ticks + 0.5) * tick  # half a tick of float noise
        low = high = index
        while low > 0 and by_price[low].price - by_price[low - 1].price <= gap:
            low -= 1
        while high < len(by_price) - 1 and by_price[high + 1].price - by_price[high].price <= gap:
            high += 1
        return by_price[low : high + 1]

    def detection(
        self, layer: list[LargeOrder], now_ms: int, opposite_volume: float, same_volume: float
    ) -> Detection:
        """The detection of a layer found by `find`; the volumes are the takers' on each side while it rested."""
        c = self.config
        start = min(o.placed_ms for o in layer)
        end = max(o.ended_ms or o.placed_ms for o in layer)
        sizes = [o.size for o in layer]
        median = statistics.median(sizes)
        spread = (max(sizes) - min(sizes)) / (2 * median) if median > 0 else 1.0
        hold_share = (end - start) / (c.layering_max_ttl_s * 1000)
        cancelled = sum(o.size - o.filled for o in layer) / sum(sizes)
        extra = len(layer) - c.layering_min_orders
        confidence = (
            0.5
            + 0.1 * _unit((extra + 1) / 3)
            + 0.15 * _unit(1 - spread / max(c.layering_size_tolerance, 1e-9))
            + 0.1 * _unit(1 - hold_share)
            + 0.05 * cancelled
            + (0.1 if opposite_volume > same_volume else 0.0)
        )
        side = layer[0].side
        return Detection(
            detection_id=f"{self.symbol}:layering:{side}:{start}",
            symbol=self.symbol,
            kind=DetectionKind.LAYERING,
            side=side,
            price_low=min(o.price for o in layer),
            price_high=max(o.price for o in layer),
            start_ms=start,
            end_ms=end,
            detected_ms=max(now_ms, end),
            updated_ms=max(now_ms, end),
            confidence=round(_unit(confidence), 4),
            evidence={
                "orders": [o.evidence() for o in layer],
                "order_count": len(layer),
                "cancel_rate": round(cancelled, 4),
                "size_spread": round(spread, 4),
                "total_notional_usdt": round(sum(o.notional for o in layer), 2),
                "opposite_taker_volume": round(opposite_volume, 10),
                "same_side_taker_volume": round(same_volume, 10),
            },
        )
