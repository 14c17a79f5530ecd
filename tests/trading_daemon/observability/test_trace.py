from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from trading_daemon.observability.logging import configure_logging, get_logger, reset_logging
from trading_daemon.observability.trace import (
    bind_correlation_id,
    current_correlation_id,
    current_trace_id,
    new_correlation_id,
    trace_operation,
    with_trace,
)

log = get_logger("depthcharge.test.trace")


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    configure_logging(tmp_path, "DEBUG", console=False)
    yield tmp_path / f"bot_{datetime.now(UTC).strftime('%Y%m%d')}.log"
    reset_logging()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_trace_id_survives_awaits_and_tasks(log_file: Path) -> None:
    async def child() -> None:
        await asyncio.sleep(0)
        log.info("in_task")

    async with trace_operation("trading_operation", symbol="BTCUSDT") as op:
        log.info("before_await")
        await asyncio.sleep(0)
        log.info("after_await")
        await asyncio.gather(asyncio.create_task(child()), asyncio.create_task(child()))
    assert current_trace_id() is None
    log.info("outside")

    by_event: dict[str, list[dict[str, Any]]] = {}
    for line in lines(log_file):
        by_event.setdefault(line["event"], []).append(line)
    inside = ["before_await", "after_await", "in_task", "operation_started", "operation_completed"]
    assert {line["trace_id"] for event in inside for line in by_event[event]} == {op.trace_id}
    assert by_event["outside"][0]["trace_id"] is None
    assert by_event["operation_started"][0]["symbol"] == "BTCUSDT"
    assert by_event["operation_completed"][0]["duration_ms"] >= 0


async def test_concurrent_operations_keep_separate_traces(log_file: Path) -> None:
    async def worker(name: str) -> str | None:
        async with trace_operation(name):
            for _ in range(3):
                log.info("step", worker=name)
                await asyncio.sleep(0)
            return current_trace_id()

    ids = await asyncio.gather(worker("a"), worker("b"))
    assert ids[0] != ids[1]
    steps = [line for line in lines(log_file) if line["event"] == "step"]
    assert {(s["worker"], s["trace_id"]) for s in steps} == {("a", ids[0]), ("b", ids[1])}


def test_nested_operations_inherit_and_clear() -> None:
    assert current_trace_id() is None
    with trace_operation("outer") as outer:
        with trace_operation("inner") as inner:
            assert current_trace_id() == outer.trace_id == inner.trace_id
        assert inner.is_root is False
        assert current_trace_id() == outer.trace_id
    assert current_trace_id() is None


def test_explicit_trace_id_is_adopted_only_at_the_root() -> None:
    with trace_operation("from_event", trace_id="evt-1"), trace_operation("nested", trace_id="ignored"):
        assert current_trace_id() == "evt-1"
    assert current_trace_id() is None


def test_failure_is_logged_and_trace_cleared(log_file: Path) -> None:
    with pytest.raises(ValueError), trace_operation("outer"), trace_operation("inner"):
        raise ValueError("bad price")
    assert current_trace_id() is None
    failed = [line for line in lines(log_file) if line["event"] == "operation_failed"]
    assert [f["operation"] for f in failed] == ["inner", "outer"]
    assert all(f["level"] == "error" and f["error"] == "bad price" for f in failed)
    assert "exception" not in failed[0] and "ValueError: bad price" in failed[1]["exception"]


async def test_with_trace_sync_and_async(log_file: Path) -> None:
    @with_trace
    async def place_order() -> str | None:
        await asyncio.sleep(0)
        return current_trace_id()

    @with_trace(name="risk_check")
    def check() -> str | None:
        return current_trace_id()

    assert await place_order() is not None
    assert check() is not None
    with trace_operation("outer") as op:
        assert check() == op.trace_id
        assert await place_order() == op.trace_id
    operations = {line["operation"] for line in lines(log_file) if line["event"] == "operation_completed"}
    assert {"risk_check", "outer"} <= operations
    assert any(name.endswith("place_order") for name in operations)


async def test_correlation_id_binding() -> None:
    async def handler() -> tuple[str, str | None]:
        # Bound inside a task: the binding dies with the task's context.
        cid = bind_correlation_id()
        return cid, current_correlation_id()

    cid, seen = await asyncio.create_task(handler())
    assert cid == seen and len(cid) == 32
    assert current_correlation_id() is None
    assert new_correlation_id() != new_correlation_id()
