"""Each strategy's parameters (docs/strategies.md), and the StrategyConfig built from them and the consensus
settings they extend."""

from __future__ import annotations

from typing import Self

from pydantic import field_validator, model_validator

from infra.configs import (
    IMBALANCE_DEPTHS,
    CostConfig,
    EntryStyleName,
    ImbalanceConfig,
    MomentumConfig,
    SarWaveConfig,
    StrategyConfig,
    SuperTrendConfig,
    VolumeProfileConfig,
    parse_strategy_names,
    parse_strategy_weights,
)
from infra.settings_fields.base import setting
from infra.settings_fields.strategies import StrategyConsensusFields
from schemas.enums import EntryStyle


class StrategyFields(StrategyConsensusFields):
    """The parameters of each strategy, over the consensus settings they extend."""

    imbalance_buy_threshold: float = setting(
        0.75,
        "IMBALANCE_BUY_THRESHOLD",
        "strategy: order-book imbalance",
        "Bid share of the book's size (0.0-1.0) at or above which the imbalance strategy buys.",
        ge=0,
        le=1,
    )
    imbalance_sell_threshold: float = setting(
        0.25,
        "IMBALANCE_SELL_THRESHOLD",
        "strategy: order-book imbalance",
        "Bid share at or below which it sells.",
        ge=0,
        le=1,
    )
    min_cluster_volume: float = setting(
        10000.0,
        "MIN_CLUSTER_VOLUME",
        "strategy: order-book imbalance",
        "Notional (USDT) from which a book level counts as a cluster (the analyzer's clusters; the "
        "imbalance strategy wants more of it on its own side).",
        ge=0,
    )
    imbalance_depth: int = setting(
        5,
        "IMBALANCE_DEPTH",
        "strategy: order-book imbalance",
        "Levels per side the imbalance strategy reads: 1, 5, 10, 20 or 50.",
    )
    imbalance_take_profit_bps: float = setting(
        15.0,
        "IMBALANCE_TAKE_PROFIT_BPS",
        "strategy: order-book imbalance",
        "Take-profit distance, bps.",
        gt=0,
    )
    imbalance_stop_loss_bps: float = setting(
        10.0, "IMBALANCE_STOP_LOSS_BPS", "strategy: order-book imbalance", "Stop-loss distance, bps.", gt=0
    )
    imbalance_max_hold_s: float = setting(
        60.0,
        "IMBALANCE_MAX_HOLD_S",
        "strategy: order-book imbalance",
        "Seconds after which its position is closed, and the horizon its signals are measured over.",
        gt=0,
    )
    imbalance_entry_style: EntryStyleName = setting(
        "maker",
        "IMBALANCE_ENTRY_STYLE",
        "strategy: order-book imbalance",
        "taker (market order) or maker (PostOnly at the touch).",
    )
    momentum_roc_period: int = setting(
        10, "MOMENTUM_ROC_PERIOD", "strategy: momentum", "Candles of the rate of change.", ge=1
    )
    momentum_roc_threshold_pct: float = setting(
        0.15,
        "MOMENTUM_ROC_THRESHOLD_PCT",
        "strategy: momentum",
        "Rate of change (percent over MOMENTUM_ROC_PERIOD candles) from which momentum trades.",
        gt=0,
    )
    momentum_rsi_period: int = setting(
        14, "MOMENTUM_RSI_PERIOD", "strategy: momentum", "Candles of the RSI (Wilder's).", ge=2
    )
    momentum_rsi_overbought: float = setting(
        70.0,
        "MOMENTUM_RSI_OVERBOUGHT",
        "strategy: momentum",
        "No buying at or above this RSI...",
        ge=0,
        le=100,
    )
    momentum_rsi_oversold: float = setting(
        30.0,
        "MOMENTUM_RSI_OVERSOLD",
        "strategy: momentum",
        "...and no selling at or below this.",
        ge=0,
        le=100,
    )
    momentum_volume_period: int = setting(
        20, "MOMENTUM_VOLUME_PERIOD", "strategy: momentum", "Candles of the average volume.", ge=1
    )
    momentum_volume_mult: float = setting(
        1.2,
        "MOMENTUM_VOLUME_MULT",
        "strategy: momentum",
        "Volume confirmation: the last candle's volume must reach this multiple of the average.",
        ge=0,
    )
    momentum_stop_atr: float = setting(
        1.5, "MOMENTUM_STOP_ATR", "strategy: momentum", "Stop-loss distance in ATRs.", gt=0
    )
    momentum_take_profit_atr: float = setting(
        3.0, "MOMENTUM_TAKE_PROFIT_ATR", "strategy: momentum", "Take-profit distance in ATRs.", gt=0
    )
    momentum_max_hold_s: float = setting(
        1800.0, "MOMENTUM_MAX_HOLD_S", "strategy: momentum", "Longest hold and signal horizon, s.", gt=0
    )
    momentum_entry_style: EntryStyleName = setting(
        "taker",
        "MOMENTUM_ENTRY_STYLE",
        "strategy: momentum",
        "taker (market order) or maker (PostOnly at the touch).",
    )
    sar_acceleration: float = setting(
        0.02, "SAR_ACCELERATION", "strategy: SAR wave", "Parabolic SAR acceleration step.", gt=0
    )
    sar_max_acceleration: float = setting(
        0.2, "SAR_MAX_ACCELERATION", "strategy: SAR wave", "Parabolic SAR maximum acceleration.", gt=0
    )
    sar_adx_period: int = setting(
        14, "SAR_ADX_PERIOD", "strategy: SAR wave", "Candles of the ADX trend-strength filter.", ge=2
    )
    sar_adx_threshold: float = setting(
        25.0,
        "SAR_ADX_THRESHOLD",
        "strategy: SAR wave",
        "ADX from which the trend counts as strong enough to trade.",
        ge=0,
        le=100,
    )
    sar_swing_order: int = setting(
        3,
        "SAR_SWING_ORDER",
        "strategy: SAR wave",
        "A swing high (low) is the highest high (lowest low) of this many candles on each side.",
        ge=1,
    )
    sar_fib_min: float = setting(
        0.382,
        "SAR_FIB_MIN",
        "strategy: SAR wave",
        "Entries lie between this Fibonacci retracement of the last wave...",
        gt=0,
        lt=1,
    )
    sar_fib_max: float = setting(0.618, "SAR_FIB_MAX", "strategy: SAR wave", "...and this one.", gt=0, lt=1)
    sar_min_wave_atr: float = setting(
        2.0, "SAR_MIN_WAVE_ATR", "strategy: SAR wave", "Smallest wave traded, in ATRs.", ge=0
    )
    sar_max_hold_s: float = setting(
        3600.0, "SAR_MAX_HOLD_S", "strategy: SAR wave", "Longest hold and signal horizon, s.", gt=0
    )
    sar_entry_style: EntryStyleName = setting(
        "maker",
        "SAR_ENTRY_STYLE",
        "strategy: SAR wave",
        "taker (market order) or maker (PostOnly at the touch).",
    )
    supertrend_atr_period: int = setting(
        10, "SUPERTREND_ATR_PERIOD", "strategy: SuperTrend", "ATR period of the bands.", ge=1
    )
    supertrend_multiplier: float = setting(
        3.0, "SUPERTREND_MULTIPLIER", "strategy: SuperTrend", "Band distance in ATRs.", gt=0
    )
    supertrend_signal_bars: int = setting(
        3,
        "SUPERTREND_SIGNAL_BARS",
        "strategy: SuperTrend",
        "A trend flip is traded for this many candles after it.",
        ge=1,
    )
    supertrend_volume_mult: float = setting(
        1.0,
        "SUPERTREND_VOLUME_MULT",
        "strategy: SuperTrend",
        "Volume filter: the flip candle's volume must reach this multiple of the 20-candle average.",
        ge=0,
    )
    supertrend_trailing_atr: float = setting(
        2.0,
        "SUPERTREND_TRAILING_ATR",
        "strategy: SuperTrend",
        "Trailing stop distance from the best close since entry, in ATRs (armed once a trade is one ATR "
        "in profit).",
        gt=0,
    )
    supertrend_take_profit_atr: float = setting(
        4.0, "SUPERTREND_TAKE_PROFIT_ATR", "strategy: SuperTrend", "Take-profit distance in ATRs.", gt=0
    )
    supertrend_max_hold_s: float = setting(
        3600.0, "SUPERTREND_MAX_HOLD_S", "strategy: SuperTrend", "Longest hold and signal horizon, s.", gt=0
    )
    supertrend_entry_style: EntryStyleName = setting(
        "taker",
        "SUPERTREND_ENTRY_STYLE",
        "strategy: SuperTrend",
        "taker (market order) or maker (PostOnly at the touch).",
    )
    volume_profile_lookback: int = setting(
        120, "VOLUME_PROFILE_LOOKBACK", "strategy: volume profile", "Candles in the profile.", ge=10
    )
    volume_profile_bins: int = setting(
        40, "VOLUME_PROFILE_BINS", "strategy: volume profile", "Price bins of the profile.", ge=5
    )
    volume_profile_value_area: float = setting(
        0.70,
        "VOLUME_PROFILE_VALUE_AREA",
        "strategy: volume profile",
        "Share of the volume in the value area around the point of control.",
        gt=0,
        lt=1,
    )
    volume_profile_hvn_mult: float = setting(
        1.5,
        "VOLUME_PROFILE_HVN_MULT",
        "strategy: volume profile",
        "A bin with at least this multiple of the mean bin volume is a high-volume node...",
        gt=1,
    )
    volume_profile_lvn_mult: float = setting(
        0.5,
        "VOLUME_PROFILE_LVN_MULT",
        "strategy: volume profile",
        "...and one with at most this multiple a low-volume node.",
        gt=0,
        lt=1,
    )
    volume_profile_breakout_volume_mult: float = setting(
        1.5,
        "VOLUME_PROFILE_BREAKOUT_VOLUME_MULT",
        "strategy: volume profile",
        "A breakout out of the value area counts when its candle's volume reaches this multiple of the "
        "20-candle average.",
        ge=0,
    )
    volume_profile_stop_atr: float = setting(
        1.0,
        "VOLUME_PROFILE_STOP_ATR",
        "strategy: volume profile",
        "Stop-loss distance beyond the value-area edge, in ATRs.",
        gt=0,
    )
    volume_profile_max_hold_s: float = setting(
        1800.0,
        "VOLUME_PROFILE_MAX_HOLD_S",
        "strategy: volume profile",
        "Longest hold and signal horizon, s.",
        gt=0,
    )
    volume_profile_entry_style: EntryStyleName = setting(
        "maker",
        "VOLUME_PROFILE_ENTRY_STYLE",
        "strategy: volume profile",
        "taker (market order) or maker (PostOnly at the touch).",
    )

    @field_validator("imbalance_depth")
    @classmethod
    def _imbalance_depth_held(cls, value: int) -> int:
        if value not in IMBALANCE_DEPTHS:
            raise ValueError(
                f"IMBALANCE_DEPTH must be one of {IMBALANCE_DEPTHS} (the analyzer's depths), got {value}"
            )
        return value

    @model_validator(mode="after")
    def _strategy_settings_consistent(self) -> Self:
        _ = self.strategies  # StrategyConfig checks thresholds, Fibonacci bounds and RSI levels, naming them
        return self

    @property
    def strategies(self) -> StrategyConfig:
        atr = self.strategy_atr_period
        return StrategyConfig(
            enabled=parse_strategy_names(self.enabled_strategies),
            consensus_mode=self.consensus_mode,
            min_strategies=self.min_strategies,
            min_consensus_confidence=self.min_consensus_confidence,
            weights=parse_strategy_weights(self.strategy_weights),
            costs=CostConfig(
                taker_fee_bps=self.taker_fee_bps,
                maker_fee_bps=self.maker_fee_bps,
                min_expected_edge_bps=self.min_expected_edge_bps,
                edge_prior_signals=self.edge_prior_signals,
            ),
            imbalance=ImbalanceConfig(
                buy_threshold=self.imbalance_buy_threshold,
                sell_threshold=self.imbalance_sell_threshold,
                min_cluster_volume=self.min_cluster_volume,
                depth=self.imbalance_depth,
                take_profit_bps=self.imbalance_take_profit_bps,
                stop_loss_bps=self.imbalance_stop_loss_bps,
                max_hold_s=self.imbalance_max_hold_s,
                entry_style=EntryStyle(self.imbalance_entry_style),
            ),
            momentum=MomentumConfig(
                roc_period=self.momentum_roc_period,
                roc_threshold_pct=self.momentum_roc_threshold_pct,
                rsi_period=self.momentum_rsi_period,
                rsi_overbought=self.momentum_rsi_overbought,
                rsi_oversold=self.momentum_rsi_oversold,
                volume_period=self.momentum_volume_period,
                volume_mult=self.momentum_volume_mult,
                atr_period=atr,
                stop_atr=self.momentum_stop_atr,
                take_profit_atr=self.momentum_take_profit_atr,
                max_hold_s=self.momentum_max_hold_s,
                entry_style=EntryStyle(self.momentum_entry_style),
            ),
            sar_wave=SarWaveConfig(
                acceleration=self.sar_acceleration,
                max_acceleration=self.sar_max_acceleration,
                adx_period=self.sar_adx_period,
                adx_threshold=self.sar_adx_threshold,
                swing_order=self.sar_swing_order,
                fib_min=self.sar_fib_min,
                fib_max=self.sar_fib_max,
                min_wave_atr=self.sar_min_wave_atr,
                atr_period=atr,
                max_hold_s=self.sar_max_hold_s,
                entry_style=EntryStyle(self.sar_entry_style),
            ),
            supertrend=SuperTrendConfig(
                atr_period=self.supertrend_atr_period,
                multiplier=self.supertrend_multiplier,
                signal_bars=self.supertrend_signal_bars,
                roc_period=self.momentum_roc_period,
                volume_period=self.momentum_volume_period,
                volume_mult=self.supertrend_volume_mult,
                trailing_atr=self.supertrend_trailing_atr,
                take_profit_atr=self.supertrend_take_profit_atr,
                max_hold_s=self.supertrend_max_hold_s,
                entry_style=EntryStyle(self.supertrend_entry_style),
            ),
            volume_profile=VolumeProfileConfig(
                lookback=self.volume_profile_lookback,
                bins=self.volume_profile_bins,
                value_area=self.volume_profile_value_area,
                hvn_mult=self.volume_profile_hvn_mult,
                lvn_mult=self.volume_profile_lvn_mult,
                breakout_volume_mult=self.volume_profile_breakout_volume_mult,
                volume_period=self.momentum_volume_period,
                atr_period=atr,
                stop_atr=self.volume_profile_stop_atr,
                max_hold_s=self.volume_profile_max_hold_s,
                entry_style=EntryStyle(self.volume_profile_entry_style),
            ),
        )
