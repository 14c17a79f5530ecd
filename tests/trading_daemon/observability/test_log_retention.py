"""LOG_RETENTION_DAYS: old daily log files are deleted when logging starts and at each UTC midnight."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.settings import load_settings
from trading_daemon.observability.logging import (
    DailyFileHandler,
    configure_logging,
    prune_logs,
    reset_logging,
)

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC).timestamp()


def _day(offset: int, base: float = NOW) -> str:
    return (datetime.fromtimestamp(base, UTC) - timedelta(days=offset)).strftime("%Y%m%d")


def _touch(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).write_text("{}\n", encoding="utf-8")


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    reset_logging()


def test_prune_keeps_today_and_the_retention_window_only(logs: Path) -> None:
    _touch(
        logs, *(f"bot_{_day(d)}.log" for d in range(0, 20)), *(f"bot_errors_{_day(d)}.log" for d in (3, 15))
    )
    foreign = [
        "bot_20250101.log.gz",
        "other_20200101.log",
        "bot_99999999.log",
        "notes.txt",
        "bot_2020010.log",
    ]
    _touch(logs, *foreign)
    removed = prune_logs(logs, 14, now=NOW)
    assert sorted(p.name for p in removed) == sorted(
        [f"bot_{_day(d)}.log" for d in range(15, 20)] + [f"bot_errors_{_day(15)}.log"]
    )
    left = {p.name for p in logs.iterdir()}
    assert {f"bot_{_day(d)}.log" for d in range(0, 15)} <= left and f"bot_errors_{_day(3)}.log" in left
    assert set(foreign) <= left  # never touches files it did not write
    assert prune_logs(logs, 14, now=NOW) == []
    assert prune_logs(logs / "missing", 14, now=NOW) == []
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match="LOG_RETENTION_DAYS"):
            prune_logs(logs, bad)  # type: ignore[arg-type]


def test_configure_logging_prunes_at_start(logs: Path) -> None:
    today = datetime.now(UTC).timestamp()
    old, recent = f"bot_{_day(30, today)}.log", f"bot_errors_{_day(2, today)}.log"
    _touch(logs, old, recent)
    configure_logging(logs, "INFO", console=False, retention_days=7)
    assert not (logs / old).exists() and (logs / recent).exists()
    configure_logging(logs, "INFO", console=False)  # no retention: nothing is pruned
    _touch(logs, old)
    configure_logging(logs, "INFO", console=False)
    assert (logs / old).exists()


def test_the_daily_switch_prunes_while_running(logs: Path) -> None:
    now = [NOW]
    handler = DailyFileHandler(logs, "bot", clock=lambda: now[0], retention_days=3)
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", None, None)
    handler.emit(record)
    _touch(logs, f"bot_{_day(5)}.log", f"bot_errors_{_day(4)}.log", f"bot_{_day(2)}.log")
    handler.emit(record)  # same day: no pruning
    assert (logs / f"bot_{_day(5)}.log").exists()
    now[0] = NOW + 86_400  # past UTC midnight: a new file, and files older than 3 days before it go
    handler.emit(record)
    handler.close()
    names = {p.name for p in logs.iterdir()}
    assert names == {f"bot_{_day(0)}.log", f"bot_{_day(-1)}.log", f"bot_{_day(2)}.log"}


def test_setting_defaults_to_14_days_and_is_validated() -> None:
    assert load_settings().log_retention_days == 14
    assert load_settings(LOG_RETENTION_DAYS="30").log_retention_days == 30
    with pytest.raises(ValueError, match="LOG_RETENTION_DAYS"):
        load_settings(LOG_RETENTION_DAYS="0")
