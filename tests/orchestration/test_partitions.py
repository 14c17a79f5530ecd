"""Partitions and automation: time window × symbol, hourly or daily; an open window is never a partition;
the automation exports each partition a grace after it closes, then its features, and never an open hour."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg
import pytest

from infra.settings import code_defaults
from orchestration.definitions import defs
from orchestration.partitions import (
    PartitionNotClosed,
    PartitionWindow,
    close_cron,
    market_partitions,
    require_closed,
)

CONFIG = code_defaults().orchestration
SYMBOLS = list(CONFIG.symbols)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


def test_hourly_partitions_end_with_the_last_closed_hour() -> None:
    partitions = market_partitions(CONFIG)
    keys = partitions.get_partition_keys(current_time=at(1, 3, 30))
    assert len(keys) == 3 * len(SYMBOLS)
    hours = sorted({k.keys_by_dimension["time"] for k in keys})  # type: ignore[attr-defined]
    assert hours == ["2026-01-01-00:00", "2026-01-01-01:00", "2026-01-01-02:00"]  # not 03:00, still open
    assert {k.keys_by_dimension["symbol"] for k in keys} == set(SYMBOLS)  # type: ignore[attr-defined]
    assert close_cron(CONFIG) == "3 * * * *"  # PARTITION_CLOSE_GRACE_S=120: a minute after the grace


def test_daily_partitions_are_selectable() -> None:
    daily = replace(CONFIG, partition="daily", symbols=("BTCUSDT",))
    keys = market_partitions(daily).get_partition_keys(current_time=at(3, 12))
    assert [str(k) for k in keys] == ["BTCUSDT|2026-01-01", "BTCUSDT|2026-01-02"]
    assert close_cron(daily) == "3 0 * * *"


def test_a_window_is_exported_only_after_its_grace() -> None:
    window = PartitionWindow("BTCUSDT|2026-01-01-00:00", "BTCUSDT", 0, 3_600_000)
    require_closed(window, grace_s=120, now_ms=3_720_000)
    with pytest.raises(PartitionNotClosed, match="rows may still arrive until 1970-01-01T01:02:00"):
        require_closed(window, grace_s=120, now_ms=3_719_999)


def requested(result: dg.EvaluateAutomationConditionsResult) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in result.results:
        keys = r.true_subset.expensively_compute_asset_partitions()
        if keys:
            out[r.key.to_user_string()] = {str(k.partition_key) for k in keys}  # type: ignore[attr-defined]
    return out


@pytest.mark.filterwarnings("ignore:Parameter `include_sources`:dagster.BetaWarning")
def test_the_automation_exports_each_hour_after_it_closes_and_never_an_open_one() -> None:
    with dg.instance_for_test() as instance:
        cursor = None
        ticks: list[dict[str, set[str]]] = []
        for when in (
            at(1, 3, 1),
            at(1, 3, 2),
            at(1, 3, 4),
            at(1, 3, 30),
            at(1, 4, 4),
        ):
            result = dg.evaluate_automation_conditions(
                defs=defs, instance=instance, evaluation_time=when, cursor=cursor
            )
            cursor = result.cursor
            ticks.append(requested(result))
    hour2 = {f"{s}|2026-01-01-02:00" for s in SYMBOLS}
    hour3 = {f"{s}|2026-01-01-03:00" for s in SYMBOLS}
    assert ticks[0] == {} and ticks[1] == {}  # 03:01, 03:02: the 02:00 hour is inside its grace
    assert ticks[2] == {"raw_snapshots": hour2, "labelled_features": hour2}  # 03:04: exported, then features
    assert ticks[3] == {}  # 03:30: the 03:00 hour is open; nothing twice
    assert ticks[4] == {"raw_snapshots": hour3, "labelled_features": hour3}
    # drift_report waits for a production model (model_evaluation has never run); training is scheduled.
    assert all("drift_report" not in t and "training_dataset" not in t for t in ticks)
