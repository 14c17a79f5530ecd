from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from trading_daemon.observability.logging import (
    DailyFileHandler,
    configure_console_logging,
    configure_logging,
    get_logger,
    reset_logging,
)
from trading_daemon.observability.trace import bind_correlation_id, clear_correlation_id, trace_operation


def _today() -> str:
    return datetime.now(UTC).strftime("%Y%m%d")


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    configure_logging(tmp_path, "DEBUG", console=False)
    yield tmp_path
    reset_logging()


def test_json_lines_carry_standard_fields(log_dir: Path) -> None:
    get_logger("depthcharge.test").info("hello", symbol="BTCUSDT")
    (line,) = read_lines(log_dir / f"bot_{_today()}.log")
    assert line["event"] == "hello" and line["symbol"] == "BTCUSDT"
    assert line["level"] == "info" and line["logger"] == "depthcharge.test"
    assert line["trace_id"] is None and line["correlation_id"] is None
    assert datetime.fromisoformat(line["timestamp"]).tzinfo is not None


def test_stdlib_records_share_format_and_trace(log_dir: Path) -> None:
    bind_correlation_id("corr-1")
    try:
        with trace_operation("lib_call") as op:
            logging.getLogger("aiohttp.client").warning("retrying %s", "GET")
    finally:
        clear_correlation_id()
    lines = read_lines(log_dir / f"bot_{_today()}.log")
    (lib,) = [line for line in lines if line["logger"] == "aiohttp.client"]
    assert lib["event"] == "retrying GET" and lib["level"] == "warning"
    assert lib["trace_id"] == op.trace_id and lib["correlation_id"] == "corr-1"


def test_error_file_gets_only_errors(log_dir: Path) -> None:
    log = get_logger("depthcharge.test")
    log.info("fine")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("broken")
    everything = read_lines(log_dir / f"bot_{_today()}.log")
    errors = read_lines(log_dir / f"bot_errors_{_today()}.log")
    assert [line["event"] for line in everything] == ["fine", "broken"]
    assert [line["event"] for line in errors] == ["broken"]
    assert "RuntimeError: boom" in errors[0]["exception"]


def test_level_filters_and_reconfiguration_is_idempotent(tmp_path: Path) -> None:
    try:
        for _ in range(3):
            configure_logging(tmp_path, "WARNING", console=True)
        owned = [h for h in logging.getLogger().handlers if getattr(h, "_depthcharge_owned", False)]
        assert len(owned) == 3
        log = get_logger("depthcharge.test")
        log.info("dropped")
        log.warning("kept")
        assert [line["event"] for line in read_lines(tmp_path / f"bot_{_today()}.log")] == ["kept"]
    finally:
        reset_logging()
    assert not [h for h in logging.getLogger().handlers if getattr(h, "_depthcharge_owned", False)]


def test_bad_level_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="LOUD"):
        configure_logging(tmp_path, "LOUD")


def test_daily_handler_switches_file_at_utc_midnight(tmp_path: Path) -> None:
    now = [datetime(2026, 1, 1, 23, 59, 59, tzinfo=UTC).timestamp()]
    handler = DailyFileHandler(tmp_path, "bot", clock=lambda: now[0])
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("depthcharge.test.rotation")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("before")
        now[0] += 2.0
        logger.warning("after")
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.propagate = True
    assert (tmp_path / "bot_20260101.log").read_text() == "before\n"
    assert (tmp_path / "bot_20260102.log").read_text() == "after\n"


def test_console_logging_writes_key_values_to_stderr_only(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's logging: stdout stays the command's output; events are `key=value` lines on stderr."""
    configure_console_logging("INFO")
    try:
        get_logger("depthcharge.test").info("embedded postgres ready", pgdata="/srv/pg")
        get_logger("depthcharge.test").debug("below the level")
        logging.getLogger("aiohttp.test").warning("a foreign %s", "record")
    finally:
        reset_logging()
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 2
    assert (
        "level='info' logger='depthcharge.test' event='embedded postgres ready' pgdata='/srv/pg'" in lines[0]
    )
    assert "level='warning' logger='aiohttp.test' event='a foreign record'" in lines[1]
    assert "trace_id" not in err
