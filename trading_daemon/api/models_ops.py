"""Response models of the detection, strategies and monitoring routes (`routes/detection.py`,
`routes/strategies.py`, `routes/monitoring.py`).

Money (strategy PnL and fees, the wallet seen by reconciliation) is `Decimal`, sent as a string; detector
prices are market data (float, as in `schemas.detection`); time is integer milliseconds UTC.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import Field

from schemas.detection import DetectionKind, LevelKind
from schemas.enums import Side
from trading_daemon.api.models import Model
from trading_daemon.resilience.circuit_breaker import CircuitState

# ---- detection ----------------------------------------------------------------------------------------


class DetectionStoreOut(Model):
    detections_written: int
    level_sets_written: int
    pending: int
    dropped: int
    write_failures: int
    db_up: bool


class SymbolDetectionOut(Model):
    symbol: str
    last_ts: int = Field(description="The newest market message the detectors saw (exchange ms).")
    large_orders_resting: int
    large_orders_finished: int
    detections: dict[str, int] = Field(description="Detections so far, by kind.")
    unconfirmed_breakouts: int
    blocked_by: str | None = Field(description="The detection blocking new entries now, if any.")
    blocked_until_ms: int | None
    levels: int
    errors: int


class DetectionStatusOut(Model):
    enabled: bool
    symbols: list[SymbolDetectionOut]
    active_manipulations: int
    errors: int
    store: DetectionStoreOut | None


class LevelOut(Model):
    kind: LevelKind
    price: float
    price_low: float
    price_high: float
    strength: float = Field(ge=0, le=1)
    touches: int
    volume: float
    first_touch_ms: int
    last_touch_ms: int
    computed_ms: int
    broken_ms: int | None


class LevelsOut(Model):
    symbol: str
    computed_ms: int | None = Field(description="When the levels were last computed (null before any).")
    levels: list[LevelOut] = Field(description="Lowest price first.")


class DetectionOut(Model):
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
    evidence: dict[str, Any]


class DetectionsOut(Model):
    symbol: str
    kind: DetectionKind | None
    detections: list[DetectionOut] = Field(
        description="Newest first (the daemon keeps the newest in memory)."
    )


# ---- strategies ---------------------------------------------------------------------------------------


class StrategyStatisticsOut(Model):
    """One strategy's counters (`schemas.strategies.StrategyStatistics`), money in USDT."""

    strategy: str
    enabled: bool
    signals: int
    signals_below_cost: int
    measured: int
    measured_sum_bps: float
    measured_sumsq_bps: float
    measured_hits: int
    trades: int
    wins: int
    maker_trades: int
    taker_trades: int
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    maker_net_pnl: Decimal
    taker_net_pnl: Decimal
    last_trade_ms: int
    updated_ms: int
    hit_rate: float | None = Field(description="Trades with net PnL > 0 among trades.")
    measured_mean_bps: float | None = Field(description="Mean signed move after a signal, before fees.")
    measured_hit_rate: float | None


class StrategyOut(Model):
    name: str
    enabled: bool
    weight: float
    entry_style: str
    max_hold_s: float
    hit_rate: float | None
    measured_mean_bps: float | None
    failures: int
    statistics: StrategyStatisticsOut


class StrategiesOut(Model):
    consensus_mode: str
    min_strategies: int
    min_consensus_confidence: float
    taker_fee_bps: float
    maker_fee_bps: float
    min_expected_edge_bps: float
    strategies: list[StrategyOut]
    consensus: StrategyStatisticsOut
    rows_with_votes: int
    rows_with_consensus: int
    consensus_rate: float | None


class StrategyToggle(Model):
    changed: bool
    strategy: StrategyOut


# ---- monitoring ---------------------------------------------------------------------------------------


class FSMStats(Model):
    total_order_fsms: int
    total_position_fsms: int
    order_fsms_by_status: dict[str, int]
    position_fsms_by_status: dict[str, int]


class ReconciliationSummary(Model):
    """What one reconciliation pass found and did (`ReconciliationReport.summary()`)."""

    trigger: str
    started_ms: int
    finished_ms: int = 0
    success: bool = False
    attempts: int = 0
    discrepancies: int = 0
    open_orders_on_exchange: int = 0
    orders_checked: int = 0
    order_corrections: list[dict[str, Any]] = Field(default_factory=list)
    imported_orders: int = 0
    fills_imported: int = 0
    funding_imported: int = 0
    unknown_outcomes: dict[str, int] = Field(default_factory=dict)
    hanging_orders: list[dict[str, Any]] = Field(default_factory=list)
    position_corrections: list[dict[str, Any]] = Field(default_factory=list)
    positions_deferred: int = 0
    protection_on_exchange: int = 0
    protection_corrections: list[dict[str, Any]] = Field(default_factory=list)
    fsm_restored: dict[str, int] = Field(default_factory=dict)
    positions_on_exchange: int = 0
    wallet_equity: Decimal | None = None
    wallet_available: Decimal | None = None
    error: str | None = None


class ReconciliationRunOut(Model):
    id: int | None
    trigger: str
    started_ms: int
    finished_ms: int
    success: bool
    attempts: int
    error: str | None
    trace_id: str | None
    summary: ReconciliationSummary | None


class RecoverySettings(Model):
    auto_recovery: bool
    hanging_order_check: bool
    fsm_auto_restore: bool
    hanging_order_timeout_s: float
    max_reconciliation_retries: int
    reconciliation_retry_delay_s: float
    reconcile_interval_s: float
    detailed_hanging_order_logging: bool


class RecoveryStatus(Model):
    running: bool = Field(description="A reconciliation pass is in progress.")
    reconciled: bool = Field(description="Nothing makes the account state uncertain (no holds).")
    holds: dict[str, str]
    fsm: FSMStats
    hanging_orders: int = Field(description="Hanging orders found by the last pass.")
    last_reconciliation: ReconciliationSummary | None
    recent_runs: list[ReconciliationRunOut]
    settings: RecoverySettings


class BreakerOut(Model):
    name: str
    state: CircuitState
    failure_count: int
    failure_threshold: int
    cooldown_seconds: float
    retry_after: float = Field(description="Seconds until an open breaker lets a trial call through.")
    last_failure: str | None


class BreakerReset(Model):
    previous_state: CircuitState
    breaker: BreakerOut


class RateLimiterOut(Model):
    bucket: str
    tokens: float
    max_tokens: float
    utilization: float = Field(description="Percent of the bucket in use.")
    refill_rate: float = Field(description="Tokens per second.")
    blocked_for: float = Field(description="Seconds the exchange (10006, IP ban) still blocks the bucket.")
    exchange_limit: int | None
    exchange_remaining: int | None


class RateLimiterReset(Model):
    previous_tokens: float
    limiter: RateLimiterOut
