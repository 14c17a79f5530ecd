"""The partitions of the code location, declared once and imported everywhere (time window × symbol).

Time partitions are hourly or daily (DAGSTER_PARTITION) from DAGSTER_PARTITION_START, in UTC, and a time
partition exists only once its window has ended: the open hour is never a partition, so it can never be
materialised. The symbols are TRADING_PAIRS. A partition is exported PARTITION_CLOSE_GRACE_S after its
end at the earliest (:func:`require_closed`), and the automation runs a minute past that grace.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from infra.settings import OrchestrationConfig
from orchestration.location import LOCATION

TIME = "time"
SYMBOL = "symbol"


class PartitionNotClosed(ValueError):
    """A partition whose window (plus the grace) has not ended yet; the message names it and when it will."""


@dataclass(frozen=True)
class PartitionWindow:
    """One partition as the plain functions take it: a symbol and [start_ms, end_ms)."""

    key: str
    symbol: str
    start_ms: int
    end_ms: int


def time_partitions(config: OrchestrationConfig) -> dg.TimeWindowPartitionsDefinition:
    """Hourly or daily partitions from the configured start, UTC, ending with the last closed window."""
    if config.partition == "hourly":
        return dg.HourlyPartitionsDefinition(start_date=f"{config.partition_start}-00:00", timezone="UTC")
    return dg.DailyPartitionsDefinition(start_date=config.partition_start, timezone="UTC")


def market_partitions(config: OrchestrationConfig) -> dg.MultiPartitionsDefinition:
    """Time window × symbol."""
    return dg.MultiPartitionsDefinition(
        {TIME: time_partitions(config), SYMBOL: dg.StaticPartitionsDefinition(list(config.symbols))}
    )


def close_cron(config: OrchestrationConfig) -> str:
    """When the newest partition is exported: a minute after its grace, every hour or every day."""
    minute = min(59, math.ceil(config.partition_close_grace_s / 60) + 1)
    return f"{minute} * * * *" if config.partition == "hourly" else f"{minute} 0 * * *"


def partition_window(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> PartitionWindow:
    """The symbol and time window of the partition a step runs for."""
    key = context.partition_key
    if not isinstance(key, dg.MultiPartitionKey):
        raise ValueError(f"expected a time × symbol partition key, got {key!r}")
    window = context.partition_time_window
    return PartitionWindow(
        key=str(key),
        symbol=key.keys_by_dimension[SYMBOL],
        start_ms=int(window.start.timestamp() * 1000),
        end_ms=int(window.end.timestamp() * 1000),
    )


def require_closed(window: PartitionWindow, *, grace_s: int, now_ms: int) -> None:
    """Raise :class:`PartitionNotClosed` unless the window ended at least ``grace_s`` seconds ago."""
    ready = window.end_ms + grace_s * 1000
    if now_ms < ready:
        at = datetime.fromtimestamp(ready / 1000, UTC).isoformat(timespec="seconds")
        raise PartitionNotClosed(
            f"partition {window.key} ends at {window.end_ms}; its rows may still arrive until {at} "
            f"(PARTITION_CLOSE_GRACE_S={grace_s}): export it after that"
        )


MARKET_PARTITIONS = market_partitions(LOCATION)
TIME_PARTITIONS = time_partitions(LOCATION)


def partition_check(
    asset: dg.AssetsDefinition, **kwargs: Any
) -> Callable[[Callable[..., dg.AssetCheckResult]], dg.AssetChecksDefinition]:
    """``@dg.asset_check`` on one partition of a time × symbol asset at a time.

    A check without partitions would load every partition of its asset; partitioned checks are a preview
    feature of Dagster 1.13 and warn (PreviewWarning) when defined. We rely on them knowingly, so the
    warning is silenced here, for this use only.
    """

    def decorate(fn: Callable[..., dg.AssetCheckResult]) -> dg.AssetChecksDefinition:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message="Specifying a partitions_def on an AssetCheckSpec",
                category=dg.PreviewWarning,
            )
            return dg.asset_check(asset=asset, partitions_def=MARKET_PARTITIONS, **kwargs)(fn)

    return decorate
