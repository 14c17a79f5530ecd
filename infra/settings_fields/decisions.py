"""Decision settings: trading on or off, the ML gate, risk. MLGateConfig, RiskConfig, DecisionConfig."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, field_validator

from infra.configs import DecisionConfig, MLGateConfig, RiskConfig
from infra.settings_fields.base import setting


class DecisionFields(BaseModel):
    """Whether the daemon trades, the ML gate that validates signals, the risk limits (issue 12)."""

    trading_enabled: bool = setting(
        False,
        "TRADING_ENABLED",
        "trading",
        "true: the daemon decides and trades (strategies, detectors, the ML gate, risk, execution); "
        "false: it only records the market.",
    )
    decision_max_lag_ms: int = setting(
        1500,
        "DECISION_MAX_LAG_MS",
        "trading",
        "An entry decided on a row older than this (ms, by the exchange clock) is not sent: the market "
        "it was decided on has moved.",
        gt=0,
    )
    model_max_age_hours: float = setting(
        48.0,
        "MODEL_MAX_AGE_HOURS",
        "ML gate",
        "A production model trained longer ago than this is stale: the gate falls back to the "
        "strategies' consensus alone until a newer model is promoted.",
        gt=0,
    )
    ml_min_confidence: float = setting(
        0.55,
        "ML_MIN_CONFIDENCE",
        "ML gate",
        "Below this confidence the model's view counts as neutral: it can neither confirm nor veto.",
        ge=0,
        le=1,
    )
    ml_weight: float = setting(
        0.5,
        "ML_WEIGHT",
        "ML gate",
        "Weight of the model's support in a validated signal's confidence (the consensus has 1 - this).",
        ge=0,
        le=1,
    )
    ml_min_validated_confidence: float = setting(
        0.5,
        "ML_MIN_VALIDATED_CONFIDENCE",
        "ML gate",
        "A signal the model does not contradict is traded only if its validated confidence reaches this.",
        ge=0,
        le=1,
    )
    ml_primary_horizon_s: int = setting(
        10,
        "ML_PRIMARY_HORIZON_S",
        "ML gate",
        "The prediction horizon (seconds, one of the model's) whose direction validates signals.",
        gt=0,
    )
    ml_inference_threads: int = setting(
        1,
        "ML_INFERENCE_THREADS",
        "ML gate",
        "Torch threads of the inference worker (the daemon shares the machine; 1-2 is fastest for one window).",
        ge=1,
    )
    ml_inference_timeout_ms: int = setting(
        250,
        "ML_INFERENCE_TIMEOUT_MS",
        "ML gate",
        "A prediction slower than this (ms) is not waited for: that row falls back to the consensus.",
        gt=0,
    )
    ml_poll_interval_s: float = setting(
        30.0,
        "ML_POLL_INTERVAL_S",
        "ML gate",
        "Seconds between checks of the registry's production model, the fallback to the "
        "model_promoted notification (and its only source while that connection is down).",
        gt=0,
    )
    ml_shadow_enabled: bool = setting(
        True,
        "ML_SHADOW_ENABLED",
        "ML gate",
        "Serve the newest candidate model in shadow beside production: it predicts every row, its "
        "predictions are stored for comparison, it never trades.",
    )
    max_open_positions: int = setting(
        5, "MAX_OPEN_POSITIONS", "risk", "Most positions open at once, all symbols together.", ge=0
    )
    max_exposure_usdt: Decimal = setting(
        Decimal(10000),
        "MAX_EXPOSURE_USDT",
        "risk",
        "Most notional (USDT) of open positions and open entry orders together.",
        ge=0,
    )
    min_order_size_usdt: Decimal = setting(
        Decimal(5),
        "MIN_ORDER_SIZE_USDT",
        "risk",
        "An entry whose sized notional (USDT) is below this is not sent.",
        ge=0,
    )
    max_symbol_exposure_usdt: Decimal = setting(
        Decimal(2500),
        "MAX_SYMBOL_EXPOSURE_USDT",
        "risk",
        "Most notional (USDT) open in any one symbol, unless SYMBOL_EXPOSURE_LIMITS names the symbol.",
        ge=0,
    )
    symbol_exposure_limits: str = setting(
        "",
        "SYMBOL_EXPOSURE_LIMITS",
        "risk",
        "Per-symbol notional limits overriding MAX_SYMBOL_EXPOSURE_USDT, e.g. BTCUSDT:5000,SOLUSDT:1000 "
        "(0 forbids entries in that symbol).",
    )
    leverage: Decimal = setting(
        Decimal(1),
        "LEVERAGE",
        "risk",
        "Leverage of the positions: an entry needs notional / LEVERAGE of available balance as margin.",
        ge=1,
        le=100,
    )
    risk_per_trade_pct: Decimal = setting(
        Decimal(1),
        "RISK_PER_TRADE_PCT",
        "risk",
        "Position sizing: an entry is sized so that its stop-loss loses this percentage of equity.",
        gt=0,
        le=100,
    )
    default_stop_loss_pct: Decimal = setting(
        Decimal("0.5"),
        "DEFAULT_STOP_LOSS_PCT",
        "risk",
        "Stop-loss distance (percent of the entry price) placed when a strategy names none: no entry "
        "is sent without a protective stop.",
        gt=0,
        le=50,
    )
    daily_loss_limit_usdt: Decimal = setting(
        Decimal(200),
        "DAILY_LOSS_LIMIT_USDT",
        "risk",
        "Realised plus unrealised loss (USDT, after fees) since 00:00 UTC at which new entries halt "
        "until the next UTC day (exits stay allowed).",
        gt=0,
    )
    book_stale_ms: int = setting(
        3000,
        "BOOK_STALE_MS",
        "risk",
        "A symbol whose newest valid book row is older than this (ms, exchange clock) takes no new entries.",
        gt=0,
    )
    error_burst_count: int = setting(
        5,
        "ERROR_BURST_COUNT",
        "risk",
        "Rate-limit refusals or venue service errors within ERROR_BURST_WINDOW_S that halt new entries...",
        ge=1,
    )
    error_burst_window_s: float = setting(
        60.0,
        "ERROR_BURST_WINDOW_S",
        "risk",
        "...until this many seconds pass with fewer of them.",
        gt=0,
    )

    @field_validator("symbol_exposure_limits")
    @classmethod
    def _symbol_limits_parse(cls, value: str) -> str:
        parse_symbol_limits(value)  # raises naming the bad entry
        return value

    @property
    def ml_gate(self) -> MLGateConfig:
        return MLGateConfig(
            max_age_hours=self.model_max_age_hours,
            min_confidence=self.ml_min_confidence,
            weight=self.ml_weight,
            min_validated_confidence=self.ml_min_validated_confidence,
            primary_horizon_s=self.ml_primary_horizon_s,
            inference_threads=self.ml_inference_threads,
            inference_timeout_ms=self.ml_inference_timeout_ms,
            poll_interval_s=self.ml_poll_interval_s,
            shadow_enabled=self.ml_shadow_enabled,
        )

    @property
    def risk(self) -> RiskConfig:
        return RiskConfig(
            max_open_positions=self.max_open_positions,
            max_exposure_usdt=Decimal(self.max_exposure_usdt),
            min_order_size_usdt=Decimal(self.min_order_size_usdt),
            max_symbol_exposure_usdt=Decimal(self.max_symbol_exposure_usdt),
            symbol_exposure_limits=parse_symbol_limits(self.symbol_exposure_limits),
            leverage=Decimal(self.leverage),
            risk_per_trade_pct=Decimal(self.risk_per_trade_pct),
            default_stop_loss_pct=Decimal(self.default_stop_loss_pct),
            daily_loss_limit_usdt=Decimal(self.daily_loss_limit_usdt),
            book_stale_ms=self.book_stale_ms,
            error_burst_count=self.error_burst_count,
            error_burst_window_s=self.error_burst_window_s,
        )

    @property
    def decisions(self) -> DecisionConfig:
        return DecisionConfig(trading_enabled=self.trading_enabled, max_lag_ms=self.decision_max_lag_ms)


def parse_symbol_limits(text: str) -> dict[str, Decimal]:
    """`BTCUSDT:5000,SOLUSDT:1000` as {symbol: USDT limit}; an empty text is no override."""
    limits: dict[str, Decimal] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        symbol, sep, amount = item.partition(":")
        try:
            limit = Decimal(amount.strip()) if sep else None
        except ArithmeticError:
            limit = None
        if not symbol.strip().isalnum() or limit is None or not limit.is_finite() or limit < 0:
            raise ValueError(
                f"SYMBOL_EXPOSURE_LIMITS entry {item!r} must be SYMBOL:USDT with a limit >= 0, "
                "e.g. BTCUSDT:5000"
            )
        limits[symbol.strip().upper()] = limit
    return limits
