"""Spoofing, layering and support/resistance detection settings (docs/detection.md): DetectionConfig."""

from __future__ import annotations

from pydantic import BaseModel

from infra.configs import DetectionConfig
from infra.settings_fields.base import setting


class DetectionFields(BaseModel):
    """The manipulation detectors and the support/resistance levels (issue 12)."""

    detection_enabled: bool = setting(
        True,
        "DETECTION_ENABLED",
        "detection",
        "Run the spoofing, layering and support/resistance detectors (false: no detection, and no entry "
        "is ever blocked for manipulation).",
    )
    spoofing_min_notional_usdt: float = setting(
        50_000.0,
        "SPOOFING_MIN_NOTIONAL_USDT",
        "detection",
        "A spoof is a single order of at least this notional (USDT)...",
        gt=0,
    )
    spoofing_min_size_multiple: float = setting(
        5.0,
        "SPOOFING_MIN_SIZE_MULTIPLE",
        "detection",
        "...and at least this many times the typical level (median size of levels 2-10 of its side)...",
        gt=0,
    )
    spoofing_max_ttl_s: float = setting(
        10.0,
        "SPOOFING_MAX_TTL_S",
        "detection",
        "...that rested at most this long (seconds) before it left the book...",
        gt=0,
    )
    spoofing_cancel_rate_threshold: float = setting(
        0.7,
        "SPOOFING_CANCEL_RATE_THRESHOLD",
        "detection",
        "...with at least this share of it cancelled rather than traded (raise to 0.8 against false "
        "positives)...",
        ge=0,
        le=1,
    )
    spoofing_max_distance_ticks: float = setting(
        8.0,
        "SPOOFING_MAX_DISTANCE_TICKS",
        "detection",
        "...placed at most this many price steps behind the touch (never at it: the touch queue's own growth "
        "is honest liquidity).",
        ge=1,
    )
    spoofing_episode_gap_s: float = setting(
        15.0,
        "SPOOFING_EPISODE_GAP_S",
        "detection",
        "A spoof placed within this many seconds of the last one on the same side extends that "
        "detection (spoofers repeat) instead of starting a new one.",
        ge=0,
    )
    layering_min_orders: int = setting(
        3,
        "LAYERING_MIN_ORDERS",
        "detection",
        "Layering: at least this many large orders on one side, near each other, resting together "
        "(raise to 4 against false positives)...",
        ge=2,
    )
    layering_min_order_notional_usdt: float = setting(
        15_000.0,
        "LAYERING_MIN_ORDER_NOTIONAL_USDT",
        "detection",
        "...each of at least this notional (USDT)...",
        gt=0,
    )
    layering_min_size_multiple: float = setting(
        2.5,
        "LAYERING_MIN_SIZE_MULTIPLE",
        "detection",
        "...and at least this many times the typical level...",
        gt=0,
    )
    layering_size_tolerance: float = setting(
        0.15,
        "LAYERING_SIZE_TOLERANCE",
        "detection",
        "...of similar size: each within this fraction of the layer's median size...",
        ge=0,
        le=1,
    )
    layering_max_gap_ticks: int = setting(
        2,
        "LAYERING_MAX_GAP_TICKS",
        "detection",
        "...neighbouring orders at most this many price steps apart (1: on adjacent ticks; 2 tolerates one "
        "order the book did not show)...",
        ge=1,
    )
    layering_max_placement_s: float = setting(
        10.0,
        "LAYERING_MAX_PLACEMENT_S",
        "detection",
        "...all placed within this many seconds...",
        gt=0,
    )
    layering_max_ttl_s: float = setting(
        40.0,
        "LAYERING_MAX_TTL_S",
        "detection",
        "...the layer gone at most this many seconds after its first order was placed...",
        gt=0,
    )
    layering_cancel_window_s: float = setting(
        1.0,
        "LAYERING_CANCEL_WINDOW_S",
        "detection",
        "...its orders cancelled together, within this many seconds of each other...",
        gt=0,
    )
    layering_cancel_rate_threshold: float = setting(
        0.5,
        "LAYERING_CANCEL_RATE_THRESHOLD",
        "detection",
        "...and at least this share of the layer's volume cancelled rather than traded (a layerer pulls the "
        "rest the moment the market reaches one of its orders)...",
        ge=0,
        le=1,
    )
    layering_max_distance_ticks: float = setting(
        8.0,
        "LAYERING_MAX_DISTANCE_TICKS",
        "detection",
        "...the nearest of them placed at most this many price steps behind the touch (the rest may lie "
        "deeper, within the 40 levels the tracker follows).",
        ge=1,
    )
    detection_settle_ms: int = setting(
        500,
        "DETECTION_SETTLE_MS",
        "detection",
        "How long after a large order left the book its trades may still arrive (trades and book pushes "
        "are separate streams): it is judged only then (ms).",
        ge=0,
    )
    manipulation_block_s: float = setting(
        120.0,
        "MANIPULATION_BLOCK_S",
        "detection",
        "New entries on a symbol stay blocked for this many seconds after the last evidence of a "
        "detected spoofing or layering episode (exits and protective orders stay allowed).",
        ge=0,
    )
    manipulation_min_confidence: float = setting(
        0.6,
        "MANIPULATION_MIN_CONFIDENCE",
        "detection",
        "A spoofing or layering detection blocks entries only at this confidence or above.",
        ge=0,
        le=1,
    )
    sr_lookback_candles: int = setting(
        200,
        "SR_LOOKBACK_CANDLES",
        "detection",
        "Support/resistance: the newest this many closed 1-minute candles are searched for swing points...",
        ge=11,
    )
    sr_swing_window: int = setting(
        5,
        "SR_SWING_WINDOW",
        "detection",
        "...a swing high (low) is the highest high (lowest low) of this many candles on either side...",
        ge=1,
    )
    sr_cluster_eps_pct: float = setting(
        0.1,
        "SR_CLUSTER_EPS_PCT",
        "detection",
        "...swings within this percentage of the price of each other form one level (DBSCAN eps)...",
        gt=0,
    )
    sr_min_touches: int = setting(
        2,
        "SR_MIN_TOUCHES",
        "detection",
        "...a level needs at least this many swings (DBSCAN min_samples)...",
        ge=1,
    )
    sr_max_levels: int = setting(
        8,
        "SR_MAX_LEVELS",
        "detection",
        "...and the strongest this many levels are kept.",
        ge=1,
    )
    sr_breakout_pct: float = setting(
        0.05,
        "SR_BREAKOUT_PCT",
        "detection",
        "A breakout: a candle closing this percentage beyond a level's zone...",
        ge=0,
    )
    sr_breakout_volume_multiplier: float = setting(
        1.5,
        "SR_BREAKOUT_VOLUME_MULTIPLIER",
        "detection",
        "...on at least this multiple of the mean volume of the 20 candles before it (volume validation).",
        ge=0,
    )

    @property
    def detection(self) -> DetectionConfig:
        return DetectionConfig(
            enabled=self.detection_enabled,
            spoofing_min_notional_usdt=self.spoofing_min_notional_usdt,
            spoofing_min_size_multiple=self.spoofing_min_size_multiple,
            spoofing_max_ttl_s=self.spoofing_max_ttl_s,
            spoofing_cancel_rate_threshold=self.spoofing_cancel_rate_threshold,
            spoofing_max_distance_ticks=self.spoofing_max_distance_ticks,
            spoofing_episode_gap_s=self.spoofing_episode_gap_s,
            layering_min_orders=self.layering_min_orders,
            layering_min_order_notional_usdt=self.layering_min_order_notional_usdt,
            layering_min_size_multiple=self.layering_min_size_multiple,
            layering_size_tolerance=self.layering_size_tolerance,
            layering_max_gap_ticks=self.layering_max_gap_ticks,
            layering_max_placement_s=self.layering_max_placement_s,
            layering_max_ttl_s=self.layering_max_ttl_s,
            layering_cancel_window_s=self.layering_cancel_window_s,
            layering_cancel_rate_threshold=self.layering_cancel_rate_threshold,
            layering_max_distance_ticks=self.layering_max_distance_ticks,
            settle_ms=self.detection_settle_ms,
            manipulation_block_s=self.manipulation_block_s,
            manipulation_min_confidence=self.manipulation_min_confidence,
            sr_lookback_candles=self.sr_lookback_candles,
            sr_swing_window=self.sr_swing_window,
            sr_cluster_eps_pct=self.sr_cluster_eps_pct,
            sr_min_touches=self.sr_min_touches,
            sr_max_levels=self.sr_max_levels,
            sr_breakout_pct=self.sr_breakout_pct,
            sr_breakout_volume_multiplier=self.sr_breakout_volume_multiplier,
        )
