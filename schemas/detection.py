"""Detections of the manipulation and support/resistance detectors (`trading_daemon.detection`), as
stored in `detections` and `sr_levels` and served by the API.

Prices here are market data (float64, like the raw snapshot row), not money; time is integer ms UTC.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import msgspec

from schemas.enums import Side

JsonObject = dict[str, Any]


class DetectionKind(StrEnum):
    """What a detector found. Spoofing and layering are manipulation and block entries; a breakout is
    information for the strategies."""

    SPOOFING = "spoofing"
    LAYERING = "layering"
    BREAKOUT = "breakout"

    @property
    def manipulative(self) -> bool:
        return self is not DetectionKind.BREAKOUT


class LevelKind(StrEnum):
    SUPPORT = "support"
    RESISTANCE = "resistance"


def _check_unit(where: str, name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{where}: {name} must be in [0, 1], got {value}")


def _check_prices(where: str, low: float, high: float) -> None:
    if not (math.isfinite(low) and math.isfinite(high) and 0.0 < low <= high):
        raise ValueError(f"{where}: prices must be finite with 0 < low <= high, got {low} .. {high}")


class Detection(msgspec.Struct, frozen=True, kw_only=True):
    """One finding of a detector, over its whole episode.

    `side` is the book side of the suspicious orders (Buy: bids, the fake demand sits below the price;
    Sell: asks); for a breakout it is the direction of the break (Buy: up through a resistance).
    `start_ms`/`end_ms` span the evidence (first order placed .. last order gone, or the breakout
    candle); a spoofing episode that repeats extends its detection, which keeps its `detection_id`.
    `detected_ms` is when the detector first concluded, `updated_ms` when it last extended it.
    `evidence` holds what the decision rests on (orders with sizes and lifetimes, multiples of the
    typical level, cancel rate; the level and volume ratio of a breakout).
    """

    detection_id: str
    symbol: str
    kind: DetectionKind
    side: Side
    price_low: float
    price_high: float
    start_ms: int
    end_ms: int
    detected_ms: int
    updated_ms: int
    confidence: float
    evidence: JsonObject = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"Detection {self.detection_id!r}"
        if not self.detection_id or not self.symbol:
            raise ValueError(f"{where}: detection_id and symbol must not be empty")
        _check_prices(where, self.price_low, self.price_high)
        if not 0 < self.start_ms <= self.end_ms:
            raise ValueError(f"{where}: needs 0 < start_ms <= end_ms, got {self.start_ms} .. {self.end_ms}")
        if not self.start_ms <= self.detected_ms <= self.updated_ms:
            raise ValueError(
                f"{where}: needs start_ms <= detected_ms <= updated_ms, got "
                f"{self.start_ms}, {self.detected_ms}, {self.updated_ms}"
            )
        _check_unit(where, "confidence", self.confidence)

    def to_dict(self) -> JsonObject:
        """JSON-able form (enums as their values), for audit rows and the API."""
        result: JsonObject = msgspec.to_builtins(self)
        return result


class SupportResistanceLevel(msgspec.Struct, frozen=True, kw_only=True):
    """A price zone where swings of the candles cluster (DBSCAN over swing highs and lows).

    `price` is the volume-weighted centre of the cluster, `price_low`..`price_high` its extent;
    `touches` the swing points in it, `volume` the candle volume at those swings (base units);
    `strength` in [0, 1] grows with touches, volume and recency. `kind` is relative to the last close
    (support below, resistance above) at `computed_ms`. `broken_ms` is set once a close beyond the zone
    on validated volume broke it.
    """

    symbol: str
    kind: LevelKind
    price: float
    price_low: float
    price_high: float
    strength: float
    touches: int
    volume: float
    first_touch_ms: int
    last_touch_ms: int
    computed_ms: int
    broken_ms: int | None = None

    def __post_init__(self) -> None:
        where = f"SupportResistanceLevel {self.symbol} {self.price}"
        _check_prices(where, self.price_low, self.price_high)
        if not self.price_low <= self.price <= self.price_high:
            raise ValueError(f"{where}: price must lie in {self.price_low} .. {self.price_high}")
        _check_unit(where, "strength", self.strength)
        if self.touches < 1 or not (math.isfinite(self.volume) and self.volume >= 0):
            raise ValueError(f"{where}: needs touches >= 1 and a finite volume >= 0")
        if not 0 < self.first_touch_ms <= self.last_touch_ms <= self.computed_ms:
            raise ValueError(f"{where}: needs 0 < first_touch_ms <= last_touch_ms <= computed_ms")
