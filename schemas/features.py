"""The feature spec of docs/features.md: the 110 names in order, their groups, channels and units, every
parameter of §5, the definitions version, and the spec hash of §1.7.

Feature parameters are fixed here, not read from the environment; only SNAPSHOT_INTERVAL_MS comes
from settings, and it enters the hash. ROW_GRACE_MS is a builder setting and stays out of it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from schemas.market import CANDLE_INTERVAL_MS
from schemas.snapshot import BOOK_DEPTH

DEFINITIONS_VERSION = 1
DEFAULT_SNAPSHOT_INTERVAL_MS = 1000
# The parameters of §5 that code outside the feature functions needs too: the order-book topic the row
# builder subscribes (`orderbook.{BOOK_TOPIC_DEPTH}.{symbol}`; another depth sees other levels and events,
# so it is another feature spec) and the candles K(t) spans (the daemon loads CANDLE_WINDOW + 1 at start).
BOOK_TOPIC_DEPTH = 50
CANDLE_WINDOW = 200


class Channel(StrEnum):
    ORDERBOOK = "orderbook"
    CANDLE = "candle"
    INDICATOR = "indicator"


@dataclass(frozen=True)
class FeatureGroup:
    """A subsection of docs/features.md §2–4 (e.g. "orderbook.liquidity"), in vector order."""

    name: str
    channel: Channel
    features: tuple[str, ...]


# docs/features.md §2–4, in vector order (`to_array()` index = # − 1).
FEATURE_GROUPS: tuple[FeatureGroup, ...] = (
    FeatureGroup(
        "orderbook.basic_microstructure",
        Channel.ORDERBOOK,
        (
            "bid_ask_spread_abs",
            "bid_ask_spread_rel",
            "mid_price",
            "micro_price",
            "vwap_bid_5",
            "vwap_ask_5",
            "vwap_bid_10",
            "vwap_ask_10",
            "depth_bid_5",
            "depth_ask_5",
            "depth_bid_10",
            "depth_ask_10",
            "total_bid_volume",
            "total_ask_volume",
            "book_depth_ratio",
        ),
    ),
    FeatureGroup(
        "orderbook.imbalance_pressure",
        Channel.ORDERBOOK,
        (
            "imbalance_5",
            "imbalance_10",
            "imbalance_total",
            "price_pressure",
            "volume_delta_5",
            "order_flow_imbalance",
            "bid_intensity",
            "ask_intensity",
            "buy_sell_ratio",
            "smart_money_index",
        ),
    ),
    FeatureGroup(
        "orderbook.clusters_levels",
        Channel.ORDERBOOK,
        (
            "largest_bid_cluster_price",
            "largest_bid_cluster_volume",
            "largest_ask_cluster_price",
            "largest_ask_cluster_volume",
            "num_bid_clusters",
            "num_ask_clusters",
            "support_level_1",
            "resistance_level_1",
            "distance_to_support",
            "distance_to_resistance",
        ),
    ),
    FeatureGroup(
        "orderbook.liquidity",
        Channel.ORDERBOOK,
        (
            "liquidity_bid_5",
            "liquidity_ask_5",
            "liquidity_asymmetry",
            "effective_spread",
            "kyle_lambda",
            "amihud_illiquidity",
            "roll_spread",
            "depth_imbalance_ratio",
        ),
    ),
    FeatureGroup(
        "orderbook.temporal",
        Channel.ORDERBOOK,
        (
            "level_ttl_avg",
            "level_ttl_std",
            "orderbook_volatility",
            "update_frequency",
            "quote_intensity",
            "trade_arrival_rate",
            "spread_volatility",
        ),
    ),
    FeatureGroup("candle.ohlcv", Channel.CANDLE, ("open", "high", "low", "close", "volume", "typical_price")),
    FeatureGroup(
        "candle.derived",
        Channel.CANDLE,
        (
            "returns",
            "log_returns",
            "high_low_range",
            "close_open_diff",
            "upper_shadow",
            "lower_shadow",
            "body_size",
        ),
    ),
    FeatureGroup(
        "candle.volatility",
        Channel.CANDLE,
        ("realized_volatility", "parkinson_volatility", "garman_klass_volatility"),
    ),
    FeatureGroup(
        "candle.volume",
        Channel.CANDLE,
        (
            "volume_ma_ratio",
            "volume_change_rate",
            "price_volume_trend",
            "volume_weighted_price",
            "money_flow",
        ),
    ),
    FeatureGroup(
        "candle.patterns",
        Channel.CANDLE,
        ("doji_strength", "hammer_strength", "engulfing_strength", "gap_size"),
    ),
    FeatureGroup(
        "indicator.trend",
        Channel.INDICATOR,
        (
            "sma_10",
            "sma_20",
            "sma_50",
            "ema_10",
            "ema_20",
            "ema_50",
            "macd",
            "macd_signal",
            "macd_histogram",
            "adx",
            "plus_di",
            "minus_di",
        ),
    ),
    FeatureGroup(
        "indicator.momentum",
        Channel.INDICATOR,
        (
            "rsi_14",
            "rsi_28",
            "stochastic_k",
            "stochastic_d",
            "williams_r",
            "cci",
            "momentum_10",
            "roc",
            "mfi",
        ),
    ),
    FeatureGroup(
        "indicator.volatility",
        Channel.INDICATOR,
        (
            "bollinger_upper",
            "bollinger_middle",
            "bollinger_lower",
            "bollinger_width",
            "bollinger_pct",
            "atr_14",
            "keltner_upper",
            "keltner_lower",
        ),
    ),
    FeatureGroup("indicator.volume", Channel.INDICATOR, ("obv", "vwap", "ad_line", "cmf", "vpt", "nvi")),
)

FEATURE_NAMES: tuple[str, ...] = tuple(name for group in FEATURE_GROUPS for name in group.features)
N_FEATURES = len(FEATURE_NAMES)


class Unit(StrEnum):
    """The unit tag docs/features.md §1.4 puts before each definition (the value is the tag, ASCII minus)."""

    PRICE = "price"  # USDT per coin; not comparable across symbols
    PRICE_DIFF = "price diff"  # a difference of prices, USDT per coin
    BASE = "base"  # base-coin quantity (sizes, kline volume)
    USDT = "USDT"  # quote notional, price × size
    BPS = "bps"  # 1e-4 of the reference price
    BPS_PER_MUSDT = "bps per 1e6 USDT"  # price impact per million USDT of flow
    FRAC = "frac"  # a plain fraction (0.01 = 1 %)
    PCT = "pct"  # percent (roc, as TA-Lib returns it)
    UNIT_INTERVAL = "0..1"  # bounded indices
    SIGNED_UNIT_INTERVAL = "-1..1"
    PERCENT_INDEX = "0..100"
    NEGATIVE_PERCENT_INDEX = "-100..0"
    PER_SECOND = "/s"  # events per second
    SECONDS = "s"
    COUNT = "count"
    RATIO = "ratio"  # a ratio of like quantities
    INDEX = "idx"  # a dimensionless index


_FEATURES_BY_UNIT: dict[Unit, tuple[str, ...]] = {
    Unit.PRICE: (
        "mid_price",
        "micro_price",
        "vwap_bid_5",
        "vwap_ask_5",
        "vwap_bid_10",
        "vwap_ask_10",
        "largest_bid_cluster_price",
        "largest_ask_cluster_price",
        "support_level_1",
        "resistance_level_1",
        "open",
        "high",
        "low",
        "close",
        "typical_price",
        "volume_weighted_price",
        "sma_10",
        "sma_20",
        "sma_50",
        "ema_10",
        "ema_20",
        "ema_50",
        "bollinger_upper",
        "bollinger_middle",
        "bollinger_lower",
        "keltner_upper",
        "keltner_lower",
        "vwap",
    ),
    Unit.PRICE_DIFF: ("bid_ask_spread_abs", "macd", "macd_signal", "macd_histogram", "atr_14", "momentum_10"),
    Unit.BASE: (
        "depth_bid_5",
        "depth_ask_5",
        "depth_bid_10",
        "depth_ask_10",
        "total_bid_volume",
        "total_ask_volume",
        "volume_delta_5",
        "order_flow_imbalance",
        "largest_bid_cluster_volume",
        "largest_ask_cluster_volume",
        "volume",
        "price_volume_trend",
        "obv",
        "ad_line",
        "vpt",
    ),
    Unit.USDT: ("liquidity_bid_5", "liquidity_ask_5", "money_flow"),
    Unit.BPS: (
        "bid_ask_spread_rel",
        "price_pressure",
        "distance_to_support",
        "distance_to_resistance",
        "effective_spread",
        "roll_spread",
        "orderbook_volatility",
        "spread_volatility",
    ),
    Unit.BPS_PER_MUSDT: ("kyle_lambda", "amihud_illiquidity"),
    Unit.FRAC: (
        "returns",
        "log_returns",
        "high_low_range",
        "close_open_diff",
        "realized_volatility",
        "parkinson_volatility",
        "garman_klass_volatility",
        "volume_change_rate",
        "gap_size",
        "bollinger_width",
        "bollinger_pct",
    ),
    Unit.PCT: ("roc",),
    Unit.UNIT_INTERVAL: (
        "imbalance_5",
        "imbalance_10",
        "imbalance_total",
        "buy_sell_ratio",
        "depth_imbalance_ratio",
        "upper_shadow",
        "lower_shadow",
        "body_size",
        "doji_strength",
        "hammer_strength",
    ),
    Unit.SIGNED_UNIT_INTERVAL: ("smart_money_index", "liquidity_asymmetry", "engulfing_strength", "cmf"),
    Unit.PERCENT_INDEX: (
        "adx",
        "plus_di",
        "minus_di",
        "rsi_14",
        "rsi_28",
        "stochastic_k",
        "stochastic_d",
        "mfi",
    ),
    Unit.NEGATIVE_PERCENT_INDEX: ("williams_r",),
    Unit.PER_SECOND: (
        "bid_intensity",
        "ask_intensity",
        "update_frequency",
        "quote_intensity",
        "trade_arrival_rate",
    ),
    Unit.SECONDS: ("level_ttl_avg", "level_ttl_std"),
    Unit.COUNT: ("num_bid_clusters", "num_ask_clusters"),
    Unit.RATIO: ("book_depth_ratio", "volume_ma_ratio"),
    Unit.INDEX: ("cci", "nvi"),
}

# Each feature's unit (docs/features.md §2–4), in vector order. A unit is part of its feature's definition: a
# change of unit is a new DEFINITIONS_VERSION (which enters the spec hash), not an edit of this table.
FEATURE_UNITS: dict[str, Unit] = {
    name: unit for name in FEATURE_NAMES for unit, names in _FEATURES_BY_UNIT.items() if name in names
}
_tagged = [name for names in _FEATURES_BY_UNIT.values() for name in names]
if sorted(_tagged) != sorted(FEATURE_NAMES):
    raise ImportError(
        "every feature needs exactly one unit: "
        f"untagged {sorted(set(FEATURE_NAMES) - set(_tagged))}, unknown or twice "
        f"{sorted({n for n in _tagged if n not in FEATURE_NAMES or _tagged.count(n) > 1})}"
    )

# The features in [price] (USDT per coin): their defaults are prices (m* or P_ref), and a model sees them
# relative to the row's own mid or close (§7), never raw.
PRICE_FEATURES: frozenset[str] = frozenset(_FEATURES_BY_UNIT[Unit.PRICE])


def _bounds_of(groups: tuple[FeatureGroup, ...]) -> dict[str, tuple[int, int]]:
    bounds: dict[str, tuple[int, int]] = {}
    start = 0
    for group in groups:
        lo, _ = bounds.get(group.channel.value, (start, start))
        start += len(group.features)
        bounds[group.channel.value] = (lo, start)
    return bounds


# [start, end) positions of each channel in the feature vector: 0–50, 50–75, 75–110.
CHANNEL_BOUNDS: dict[str, tuple[int, int]] = _bounds_of(FEATURE_GROUPS)

# docs/features.md §5, every parameter but SNAPSHOT_INTERVAL_MS (which comes from settings).
FEATURE_PARAMETERS: dict[str, Any] = {
    "BOOK_TOPIC_DEPTH": BOOK_TOPIC_DEPTH,
    "BOOK_DEPTH": BOOK_DEPTH,
    "W_SHORT": 10,
    "W_LONG": 60,
    "MIN_PAIRS": 10,
    "RATIO_CAP": 100,
    "CLUSTER_SIZE_MULT": 3.0,
    "CLUSTER_MIN_NOTIONAL": 10000,
    "CANDLE_INTERVAL_MINUTES": CANDLE_INTERVAL_MS // 60_000,
    "CANDLE_WINDOW": CANDLE_WINDOW,
    "CANDLE_LOOKBACK": 20,
    "VOLUME_CHANGE_CAP": 100,
    "DOJI_BODY_FRAC": 0.1,
    "HAMMER_BODY_MULT": 2.0,
    "HAMMER_SHADOW_MULT": 2.0,
    "SMA_PERIODS": [10, 20, 50],
    "EMA_PERIODS": [10, 20, 50],
    "MACD": {"fast": 12, "slow": 26, "signal": 9},
    "ADX_DI_PERIOD": 14,
    "RSI_PERIODS": [14, 28],
    "STOCH": {"fastk": 5, "slowk": 3, "slowk_matype": "SMA", "slowd": 3, "slowd_matype": "SMA"},
    "WILLR_PERIOD": 14,
    "CCI_PERIOD": 20,
    "MOM_ROC_PERIOD": 10,
    "MFI_PERIOD": 14,
    "BBANDS": {"period": 20, "nbdevup": 2, "nbdevdn": 2, "matype": "SMA"},
    "ATR_PERIOD": 14,
    "KELTNER": {"ema": 20, "atr": 10, "multiplier": 2},
    "VWAP_WINDOW": 60,
    "CMF_PERIOD": 20,
    "NVI_BASE": 1000,
}


@dataclass(frozen=True)
class FeatureSpec:
    """The hashed identity of a feature vector: datasets and models carry `spec_hash`."""

    snapshot_interval_ms: int = DEFAULT_SNAPSHOT_INTERVAL_MS
    names: tuple[str, ...] = FEATURE_NAMES
    groups: tuple[FeatureGroup, ...] = FEATURE_GROUPS
    parameters: dict[str, Any] = field(default_factory=lambda: dict(FEATURE_PARAMETERS))
    definitions_version: int = DEFINITIONS_VERSION

    def __post_init__(self) -> None:
        if self.snapshot_interval_ms <= 0:
            raise ValueError(
                f"SNAPSHOT_INTERVAL_MS must be a positive number of ms, got {self.snapshot_interval_ms}"
            )
        if len(set(self.names)) != len(self.names):
            raise ValueError("feature names must be unique")

    def hashed_object(self) -> dict[str, Any]:
        """The object whose canonical JSON is hashed (docs/features.md §1.7)."""
        return {
            "definitions_version": self.definitions_version,
            "names": list(self.names),
            "channel_bounds": {k: list(v) for k, v in _bounds_of(self.groups).items()},
            "parameters": self.parameters,
            "snapshot_interval_ms": self.snapshot_interval_ms,
        }

    def canonical_json(self) -> str:
        return json.dumps(self.hashed_object(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @cached_property
    def spec_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    def index_of(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(
                f"unknown feature {name!r}: not one of the {len(self.names)} names of the spec"
            ) from None

    def group_of(self, name: str) -> FeatureGroup:
        for group in self.groups:
            if name in group.features:
                return group
        raise KeyError(f"unknown feature {name!r}")


def feature_spec(snapshot_interval_ms: int = DEFAULT_SNAPSHOT_INTERVAL_MS) -> FeatureSpec:
    """The spec for a given row cadence (the one setting that enters the hash)."""
    return FeatureSpec(snapshot_interval_ms=snapshot_interval_ms)
