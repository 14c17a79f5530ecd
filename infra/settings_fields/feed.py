"""Market data settings, for the feed and the recorder: FeedConfig, SpoolConfig."""

from __future__ import annotations

from typing import Self

from pydantic import field_validator, model_validator

from infra.configs import FeedConfig, SpoolConfig
from infra.settings_fields.base import RuntimeStateFields, setting
from schemas.features import DEFAULT_SNAPSHOT_INTERVAL_MS


class FeedFields(RuntimeStateFields):
    """The symbols streamed, the raw snapshot row cadence and the candle back-fill throttle."""

    trading_pairs: str = setting(
        "BTCUSDT,ETHUSDT,SOLUSDT",
        "TRADING_PAIRS",
        "market data",
        "Comma-separated USDT perpetual symbols to stream, record and trade.",
    )
    snapshot_interval_ms: int = setting(
        DEFAULT_SNAPSHOT_INTERVAL_MS,  # the feature contract's cadence (schemas.features)
        "SNAPSHOT_INTERVAL_MS",
        "market data",
        "Raw snapshot row cadence in ms (enters the feature spec hash).",
        gt=0,
    )
    row_grace_ms: int = setting(
        250,
        "ROW_GRACE_MS",
        "market data",
        "How long after its boundary a row waits for late messages before it is built, in ms.",
        ge=0,
    )
    candle_backfill_min_interval_s: float = setting(
        2.0,
        "CANDLE_BACKFILL_MIN_INTERVAL_S",
        "market data",
        "A hole in a symbol's candles is back-filled at most this often, in seconds...",
        gt=0,
    )
    candle_backfill_max_interval_s: float = setting(
        60.0,
        "CANDLE_BACKFILL_MAX_INTERVAL_S",
        "market data",
        "...backing off up to this interval while the hole persists.",
        gt=0,
    )

    @field_validator("trading_pairs")
    @classmethod
    def _pairs_are_symbols(cls, value: str) -> str:
        pairs = [p.strip() for p in value.split(",") if p.strip()]
        bad = [p for p in pairs if not (p.isalnum() and p.isupper() and p.endswith("USDT"))]
        if not pairs or bad:
            raise ValueError(
                f"TRADING_PAIRS must list USDT perpetual symbols like BTCUSDT, got {bad or value!r}"
            )
        return ",".join(pairs)

    @model_validator(mode="after")
    def _backfill_range_ordered(self) -> Self:
        if self.candle_backfill_min_interval_s > self.candle_backfill_max_interval_s:
            raise ValueError(
                f"CANDLE_BACKFILL_MIN_INTERVAL_S ({self.candle_backfill_min_interval_s}) must not exceed "
                f"CANDLE_BACKFILL_MAX_INTERVAL_S ({self.candle_backfill_max_interval_s})"
            )
        return self

    @property
    def feed(self) -> FeedConfig:
        return FeedConfig(
            symbols=tuple(self.trading_pairs.split(",")),
            snapshot_interval_ms=self.snapshot_interval_ms,
            row_grace_ms=self.row_grace_ms,
            backfill_min_interval_s=self.candle_backfill_min_interval_s,
            backfill_max_interval_s=self.candle_backfill_max_interval_s,
        )

    @property
    def spool(self) -> SpoolConfig:
        return SpoolConfig(dir=self.var_dir / "spool")
