"""The ML gate against a real registry: serving off the event loop, fallbacks, hot swap on `model_promoted`
without a missed row, refusal of a corrupt artifact or another feature spec (the old model keeps serving),
the shadow model and the polling fallback."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from psycopg_pool import AsyncConnectionPool

from infra.db.connection import Database
from infra.db.errors import DatabaseUnavailable
from infra.db.notifications import listen
from infra.db.repositories.model_versions import PROMOTION_CHANNEL
from infra.db.repositories.signals import SignalRepository
from infra.settings import MLGateConfig, code_defaults
from ml.inference import Predictor
from ml.registry import LoadedModel, ModelRegistry
from ml.windows import FeatureWindow
from schemas.enums import AuditAction
from schemas.features import feature_spec
from schemas.trading import AuditEvent
from tests.trading_daemon.ml_gate.models import SPEC, promote, register, windows
from trading_daemon.decisions.runtime import prediction_row
from trading_daemon.ml_gate import FallbackReason, MLGate, PromotionWatcher, predictor_for
from trading_daemon.observability.metrics import DaemonMetrics

SYMBOL = "BTCUSDT"


@pytest.fixture
def registry(db: Database, tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(db, root=tmp_path / "models")


def gate_config(**changes: object) -> MLGateConfig:
    return dataclasses.replace(code_defaults().ml_gate, **changes)  # type: ignore[arg-type]


def make_gate(registry: ModelRegistry, audit: list[AuditEvent] | None = None, **changes: object) -> MLGate:
    return MLGate(
        registry, gate_config(**changes), spec_hash=SPEC.spec_hash, metrics=DaemonMetrics(),
        audit=None if audit is None else audit.append,
    )  # fmt: skip


async def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_s} s")
        await asyncio.sleep(0.02)


async def test_serves_the_promoted_model_off_the_event_loop(db: Database, registry: ModelRegistry) -> None:
    threads: list[str] = []

    def recording_factory(loaded: LoadedModel, spec_hash: str) -> Predictor:
        predictor = predictor_for(loaded, spec_hash)
        inner = predictor.predict

        def predict(window: np.ndarray) -> object:
            threads.append(threading.current_thread().name)
            return inner(window)

        predictor.predict = predict  # type: ignore[method-assign,assignment]
        return predictor

    gate = MLGate(
        registry, gate_config(inference_threads=1), spec_hash=SPEC.spec_hash, factory=recording_factory
    )
    (w,) = windows(SYMBOL, 1)
    assert (await gate.predict(SYMBOL, w.ts_ms, w)).fallback is FallbackReason.NO_MODEL
    v1 = register(registry, 1)
    promote(db, v1.version)
    await gate.reload("test")
    answer = await gate.predict(SYMBOL, w.ts_ms, w)
    assert answer.model_version == v1.version and answer.prediction is not None
    assert answer.prediction.probabilities.shape == (3, 3) and answer.latency_ms > 0
    assert threads == ["ml-inference_0"]  # one worker thread, not the event loop's
    assert torch.get_num_threads() == 1
    assert (await gate.predict(SYMBOL, w.ts_ms, None)).fallback is FallbackReason.NO_WINDOW
    await gate.close()


async def test_a_model_promoted_mid_run_is_swapped_without_a_missed_row(
    db: Database, registry: ModelRegistry
) -> None:
    audit: list[AuditEvent] = []
    gate = make_gate(registry, audit, shadow_enabled=False)
    v1 = register(registry, 1)
    promote(db, v1.version)
    v2 = register(registry, 2)

    def listener(on_listening: Callable[[], Awaitable[None]]) -> AsyncIterator[str]:
        return listen(db, PROMOTION_CHANNEL, on_listening=on_listening)

    watcher = PromotionWatcher(gate, listener, poll_interval_s=3600)  # only the notification can swap
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await wait_for(lambda: watcher.listening and gate.production is not None)
    assert gate.production is not None and gate.production.version == v1.version

    rows = windows(SYMBOL, 120)
    answers = []
    promotion: asyncio.Future[None] | None = None
    for i, window in enumerate(rows):
        answers.append(await gate.predict(SYMBOL, window.ts_ms, window))
        if i == 40:
            promotion = asyncio.ensure_future(asyncio.to_thread(promote, db, v2.version))
        await asyncio.sleep(0.01)
    assert promotion is not None
    await promotion
    stop.set()
    await task

    assert [a.ts_ms for a in answers] == [w.ts_ms for w in rows]
    assert all(a.prediction is not None for a in answers), "a row went without a prediction during the swap"
    versions = [a.model_version for a in answers]
    first_new = versions.index(v2.version)
    assert 40 < first_new < len(rows) - 20  # swapped soon after the promotion, and stayed swapped
    assert set(versions[:first_new]) == {v1.version} and set(versions[first_new:]) == {v2.version}
    assert watcher.notifications == 1 and watcher.polls == 0
    loaded = [e for e in audit if e.action is AuditAction.MODEL_LOAD and e.success]
    assert [e.entity_id for e in loaded] == [v1.version, v2.version]
    await gate.close()


async def test_a_corrupt_artifact_is_refused_and_the_old_model_keeps_serving(
    db: Database, registry: ModelRegistry
) -> None:
    audit: list[AuditEvent] = []
    gate = make_gate(registry, audit, shadow_enabled=False)
    v1 = register(registry, 1)
    promote(db, v1.version)
    await gate.reload("start")
    v2 = register(registry, 2)
    weights = registry.root / v2.artifact_path
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    weights.write_bytes(bytes(blob))
    promote(db, v2.version)
    await gate.reload("model_promoted")

    assert gate.production is not None and gate.production.version == v1.version
    (refusal,) = [e for e in audit if not e.success]
    assert refusal.action is AuditAction.MODEL_LOAD and refusal.entity_id == v2.version
    assert refusal.error_message is not None and "sha256" in refusal.error_message
    assert "ArtifactCorrupt" in gate.refused[v2.version]
    (w,) = windows(SYMBOL, 1)
    assert (await gate.predict(SYMBOL, w.ts_ms, w)).model_version == v1.version
    await gate.reload("poll")  # the same refused artifact is not loaded (nor audited) again
    assert len([e for e in audit if not e.success]) == 1
    assert gate.stats()["swaps"] == {"swapped": 1, "refused": 1}
    await gate.close()


async def test_a_model_of_another_feature_spec_is_refused(db: Database, registry: ModelRegistry) -> None:
    audit: list[AuditEvent] = []
    other = feature_spec(500)
    gate = MLGate(registry, gate_config(), spec_hash=other.spec_hash, audit=audit.append)
    v1 = register(registry, 1)
    promote(db, v1.version)
    await gate.reload("start")
    assert gate.production is None and "FeatureSpecMismatch" in gate.refused[v1.version]
    (w,) = windows(SYMBOL, 1)
    assert (await gate.predict(SYMBOL, w.ts_ms, w)).fallback is FallbackReason.NO_MODEL
    await gate.close()


async def test_a_stale_model_and_a_failing_inference_fall_back(db: Database, registry: ModelRegistry) -> None:
    v1 = register(registry, 1)
    promote(db, v1.version)
    now = [v1.created_ms]
    gate = MLGate(registry, gate_config(max_age_hours=48), spec_hash=SPEC.spec_hash, metrics=DaemonMetrics(),
                  clock=lambda: now[0])  # fmt: skip
    await gate.reload("start")
    (w,) = windows(SYMBOL, 1)
    assert (await gate.predict(SYMBOL, w.ts_ms, w)).prediction is not None
    bad = w.values.copy()
    bad[-1, 7] = np.nan
    failed = await gate.predict(SYMBOL, w.ts_ms, FeatureWindow(SYMBOL, w.ts_ms, bad))
    assert (
        failed.fallback is FallbackReason.INFERENCE_FAILED and failed.error and "non-finite" in failed.error
    )
    now[0] = v1.created_ms + 49 * 3_600_000
    stale = await gate.predict(SYMBOL, w.ts_ms, w)
    assert stale.fallback is FallbackReason.STALE_MODEL and stale.error and "49.0 h" in stale.error
    assert gate.stats()["row_fallbacks"] == {"inference_failed": 1, "stale_model": 1}
    await gate.close()


async def test_the_newest_candidate_predicts_in_shadow_until_it_is_promoted(
    db: Database, pool: AsyncConnectionPool, registry: ModelRegistry
) -> None:
    gate = make_gate(registry, shadow_enabled=True)
    v1 = register(registry, 1)
    promote(db, v1.version)
    v2 = register(registry, 2)
    await gate.reload("start")
    assert gate.production is not None and gate.shadow is not None
    assert (gate.production.version, gate.shadow.version) == (v1.version, v2.version)
    (w,) = windows(SYMBOL, 1)
    production = await gate.predict(SYMBOL, w.ts_ms, w)
    shadow = await gate.predict_shadow(SYMBOL, w.ts_ms, w)
    assert (
        shadow is not None and shadow.model_version == v2.version and production.model_version == v1.version
    )
    assert production.prediction is not None and shadow.prediction is not None
    assert not np.allclose(production.prediction.probabilities, shadow.prediction.probabilities)
    store = SignalRepository(pool)  # stored side by side for comparison, as the decision runtime does
    rows = [prediction_row(production, "production"), prediction_row(shadow, "shadow")]
    assert await store.add_predictions([r for r in rows if r is not None]) == 2
    assert await store.add_predictions([r for r in rows if r is not None]) == 0  # a replay adds nothing
    stored = await store.predictions(symbol=SYMBOL)
    assert [(r["role"], r["model_version"], r["ts"]) for r in stored] == [
        ("production", v1.version, w.ts_ms), ("shadow", v2.version, w.ts_ms),
    ]  # fmt: skip
    assert stored[1]["probabilities"] == pytest.approx(shadow.prediction.probabilities.reshape(-1).tolist())
    promote(db, v2.version)
    await gate.reload("model_promoted")
    assert gate.production is not None and gate.production.version == v2.version and gate.shadow is None
    await gate.close()


async def test_polling_follows_promotions_while_the_listener_is_down(
    db: Database, registry: ModelRegistry
) -> None:
    gate = make_gate(registry)
    attempts = 0

    async def broken(on_listening: Callable[[], Awaitable[None]]) -> AsyncIterator[str]:
        nonlocal attempts
        attempts += 1
        raise DatabaseUnavailable("listener connection refused")
        yield ""  # an async generator

    watcher = PromotionWatcher(gate, broken, poll_interval_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    v1 = register(registry, 1)
    promote(db, v1.version)
    await wait_for(lambda: gate.production is not None)
    stop.set()
    await task
    assert attempts >= 1 and watcher.polls >= 1 and not watcher.listening
    await gate.close()
