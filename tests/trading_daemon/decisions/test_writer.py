"""The background batch writer: order kept, a transient failure retried until written, a refused batch
dropped without stopping the rest, the oldest records dropped (and counted) past the queue's bound."""

from __future__ import annotations

from collections.abc import Sequence

from infra.db.errors import DatabaseUnavailable, InvalidData
from trading_daemon.decisions import BatchWriter


async def test_a_transient_failure_is_retried_and_order_is_kept() -> None:
    written: list[int] = []
    failures = [DatabaseUnavailable("down"), DatabaseUnavailable("still down")]

    async def flush(batch: Sequence[int]) -> None:
        if failures:
            raise failures.pop(0)
        written.extend(batch)

    writer: BatchWriter[int] = BatchWriter("test", flush, batch_size=3, interval_s=0.01)
    writer.start()
    for i in range(10):
        writer.put(i)
    await writer.close(timeout_s=10)
    assert (
        written == list(range(10)) and writer.written == 10 and writer.failures == 2 and writer.dropped == 0
    )


async def test_a_refused_batch_is_dropped_and_the_rest_written() -> None:
    written: list[int] = []

    async def flush(batch: Sequence[int]) -> None:
        if 3 in batch:
            raise InvalidData("value out of range")
        written.extend(batch)

    writer: BatchWriter[int] = BatchWriter("test", flush, batch_size=2, interval_s=0.01)
    writer.start()
    for i in range(6):
        writer.put(i)
    await writer.close()
    assert written == [0, 1, 4, 5] and writer.dropped == 2


async def test_past_its_bound_the_oldest_records_are_dropped() -> None:
    async def flush(batch: Sequence[int]) -> None:
        return None

    writer: BatchWriter[int] = BatchWriter("test", flush, max_pending=5)
    for i in range(8):
        writer.put(i)
    assert writer.pending == 5 and writer.dropped == 3 and list(writer.recent) == list(range(8))
