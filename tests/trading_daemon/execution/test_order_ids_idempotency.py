"""Client order ids (deterministic, Bybit-valid) and the idempotency service (scenario 2: a repeat within the
TTL returns the cached result without running again)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.db.repositories import IdempotencyRepository
from trading_daemon.exchange.constants import ORDER_LINK_ID_RE
from trading_daemon.execution.idempotency import IdempotencyService, InProgress, KeyReused
from trading_daemon.execution.order_ids import attempt_of, is_ours, order_link_id


@given(intent_id=st.text(min_size=1, max_size=200), attempt=st.integers(1, 999))
def test_order_link_ids_are_valid_for_bybit_and_deterministic(intent_id: str, attempt: int) -> None:
    link_id = order_link_id(intent_id, attempt)
    assert len(link_id) <= 36 and ORDER_LINK_ID_RE.match(link_id)
    assert (
        link_id == order_link_id(intent_id, attempt) and is_ours(link_id) and attempt_of(link_id) == attempt
    )


def test_order_link_ids_differ_across_intents_and_attempts() -> None:
    ids = {order_link_id(f"sig-{i}", a) for i, a in itertools.product(range(2000), range(1, 4))}
    assert len(ids) == 6000
    # Intents that differ only in characters the slug drops still get different ids (the hash sees them).
    assert order_link_id("a.b", 1) != order_link_id("ab", 1)
    with pytest.raises(ValueError, match="attempt"):
        order_link_id("x", 0)


async def test_a_repeat_within_the_ttl_returns_the_stored_result_without_running(pool) -> None:
    service = IdempotencyService(IdempotencyRepository(pool), ttl_s=60)
    calls = 0

    async def place() -> dict:
        nonlocal calls
        calls += 1
        return {"order": "o-1", "n": calls}

    params = {"symbol": "BTCUSDT", "side": "Buy", "quantity": "0.001"}
    key = service.generate_idempotency_key("place_order", params)
    assert key == service.generate_idempotency_key("place_order", dict(reversed(list(params.items()))))
    first = await service.run("place_order", key, params, place)
    again = await service.run("place_order", key, params, place)
    assert (first.cached, again.cached, calls) == (False, True, 1) and again.result == first.result
    # A fresh service (a restarted process) finds it in the database.
    fresh = IdempotencyService(IdempotencyRepository(pool), ttl_s=60)
    assert (await fresh.run("place_order", key, params, place)).result == {"order": "o-1", "n": 1}
    assert calls == 1
    with pytest.raises(KeyReused):
        await fresh.run("place_order", key, {**params, "quantity": "0.002"}, place)


async def test_a_failed_operation_releases_its_key_and_a_running_one_is_reported(pool) -> None:
    service = IdempotencyService(IdempotencyRepository(pool), ttl_s=60)

    async def boom() -> dict:
        raise RuntimeError("exchange down")

    with pytest.raises(RuntimeError):
        await service.run("op", "k1", {}, boom)
    assert (await service.run("op", "k1", {}, _ok)).result == {"ok": True}  # the retry ran
    repo = IdempotencyRepository(pool)
    await repo.claim("k2", "op", ttl_s=60, request_hash=service.request_hash({}))
    with pytest.raises(InProgress):
        await service.run("op", "k2", {}, _ok)


async def test_expired_keys_run_again_and_are_purged(pool) -> None:
    clock = [0.0]
    service = IdempotencyService(IdempotencyRepository(pool), ttl_s=1, clock=lambda: clock[0])
    await service.run("op", "k", {}, _ok)
    clock[0] = 5.0
    assert service.cached("k") is None
    async with pool.connection() as conn:
        await conn.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second', "
                           "created_at = now() - interval '2 seconds'")  # fmt: skip
    assert (await service.run("op", "k", {}, _ok)).cached is False
    async with pool.connection() as conn:
        await conn.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second', "
                           "created_at = now() - interval '2 seconds'")  # fmt: skip
    assert await service.cleanup_expired() == 1


async def _ok() -> dict:
    return {"ok": True}
