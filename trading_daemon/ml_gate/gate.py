"""The ML gate: serves the production model (and a shadow candidate) to the decision engine, row by row.

* **Serving.** `predict` runs the production predictor on a row's window in one worker thread (torch's
  threads bounded by ML_INFERENCE_THREADS), so inference never blocks the event loop; the windows that
  arrive while a batch is in the thread (the other symbols of the same boundary) go together as the next
  batch; a prediction slower than ML_INFERENCE_TIMEOUT_MS is not waited for. A row gets a `GatePrediction` either way: the model's
  view, or the reason there is none (no model, stale model, no full window, inference failed or slow).
* **Hot swap.** `reload` asks the registry for the production version (on `model_promoted`, on the
  polling fallback, see `watcher.PromotionWatcher`), loads and verifies a new one in a loader thread
  (artifact sha256 and feature-spec hash by the registry, preprocessor spec and the primary horizon
  here), warms it, and only then replaces the served model in one assignment on the event loop: a row
  already in the worker finishes on the old model, every later row uses the new one, no row is skipped.
  A version that fails verification is refused (a `model_load` audit row with the reason), remembered
  so it is not reloaded on every poll, and the old model keeps serving.
* **Shadow.** With ML_SHADOW_ENABLED, the newest candidate newer than production is loaded too and
  predicts every row beside it; its predictions are stored for comparison and never traded.
* **Statistics.** Row predictions and fallbacks by reason, inference latency, and the validator's
  verdicts (agreement and fallback rates) — in `stats()` for the API and in Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import structlog

from infra.settings import MLGateConfig
from ml.inference import Prediction
from ml.registry import RegistryError
from ml.windows import FeatureWindow
from schemas.enums import AuditAction, ModelStatus
from schemas.model import ModelManifest
from schemas.times import now_ms
from schemas.trading import AuditEvent, Signal
from trading_daemon.errors import classify
from trading_daemon.ml_gate.prediction import FallbackReason, GatePrediction
from trading_daemon.ml_gate.served import (
    ModelSource,
    PredictorFactory,
    ServedModel,
    configure_torch,
    load_served,
    predictor_for,
)
from trading_daemon.ml_gate.validator import SignalValidator, Validation, Verdict
from trading_daemon.observability.metrics import DaemonMetrics

log = structlog.get_logger(__name__)

PRODUCTION, SHADOW = "production", "shadow"
RATE_WINDOW = 1000  # validations the agreement and fallback rates are computed over


class MLGate:
    """Holds the served models; predicts rows; validates signals (module docstring)."""

    def __init__(
        self,
        source: ModelSource,
        config: MLGateConfig,
        *,
        spec_hash: str,
        metrics: DaemonMetrics | None = None,
        audit: Callable[[AuditEvent], None] | None = None,
        factory: PredictorFactory = predictor_for,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.source = source
        self.config = config
        self.spec_hash = spec_hash
        self.metrics = metrics
        self.audit = audit
        self.factory = factory
        self.clock = clock
        self.validator = SignalValidator(config)
        self.production: ServedModel | None = None
        self.shadow: ServedModel | None = None
        self.refused: dict[str, str] = {}  # version → why (not loaded again while its artifact is the same)
        self._refused_sha: dict[str, str] = {}
        configure_torch(config.inference_threads)
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ml-inference")
        # Loading (file reads, hashing, warm-up) in its own thread: a swap never stalls the rows' inference.
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ml-loader")
        self._reload_lock = asyncio.Lock()
        self._pending: list[tuple[ServedModel, np.ndarray, asyncio.Future[Prediction]]] = []
        self._busy = False  # a batch is in the inference thread
        self.row_predictions = 0
        self.row_fallbacks: Counter[str] = Counter()
        self.swaps: Counter[str] = Counter()
        self._verdicts: deque[Verdict] = deque(maxlen=RATE_WINDOW)
        self.verdicts_total: Counter[str] = Counter()
        self._latency_ms: dict[str, deque[float]] = {
            PRODUCTION: deque(maxlen=2000),
            SHADOW: deque(maxlen=2000),
        }
        self.last_reload_ms: int | None = None

    # -- serving ----------------------------------------------------------------------------------------

    async def predict(
        self, symbol: str, ts_ms: int, window: FeatureWindow | None, *, counted: bool = True
    ) -> GatePrediction:
        """The production model's view of the row `ts_ms` of `symbol`, or the reason it has none.

        `counted=False` (an operator's question through the API) leaves the per-row counters to the rows."""
        served = self.production
        if served is None:
            return self._fallback(symbol, ts_ms, FallbackReason.NO_MODEL, counted=counted)
        age = served.age_hours(self.clock())
        if age > self.config.max_age_hours:
            return self._fallback(
                symbol,
                ts_ms,
                FallbackReason.STALE_MODEL,
                f"{served.version} is {age:.1f} h old",
                counted=counted,
            )
        if window is None:
            return self._fallback(symbol, ts_ms, FallbackReason.NO_WINDOW, counted=counted)
        answer = await self._run(served, PRODUCTION, symbol, ts_ms, window)
        if not counted:
            return answer
        if answer.prediction is not None:
            self.row_predictions += 1
        elif answer.fallback is not None:
            self.row_fallbacks[answer.fallback.value] += 1
            if self.metrics is not None:
                self.metrics.ml_row_fallbacks.labels(reason=answer.fallback.value).inc()
        return answer

    async def predict_shadow(
        self, symbol: str, ts_ms: int, window: FeatureWindow | None
    ) -> GatePrediction | None:
        """The shadow model's view of the same row (None without a shadow or a window); never traded."""
        served = self.shadow
        if served is None or window is None:
            return None
        return await self._run(served, SHADOW, symbol, ts_ms, window)

    async def _run(
        self, served: ServedModel, role: str, symbol: str, ts_ms: int, window: FeatureWindow
    ) -> GatePrediction:
        began = time.perf_counter()
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._pending.append((served, window.values, future))
        if not self._busy:
            self._dispatch()
        timeout_s = self.config.inference_timeout_ms / 1000
        try:
            # shielded: a row that stops waiting leaves its batch (and the other rows in it) alone
            prediction = await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            return self._fallback(
                symbol, ts_ms, FallbackReason.INFERENCE_TIMEOUT,
                f"{served.version} took over {self.config.inference_timeout_ms} ms", counted=False,
            )  # fmt: skip
        except Exception as exc:
            log.error(
                "model inference failed", symbol=symbol, ts=ts_ms, model=served.version, role=role,
                kind=classify(exc).kind.value, error=str(exc),
            )  # fmt: skip
            return self._fallback(
                symbol, ts_ms, FallbackReason.INFERENCE_FAILED, f"{type(exc).__name__}: {exc}", counted=False
            )
        latency = (time.perf_counter() - began) * 1000
        self._latency_ms[role].append(latency)
        if self.metrics is not None:
            self.metrics.ml_inference_seconds.labels(role=role).observe(latency / 1000)
        return GatePrediction(
            symbol=symbol,
            ts_ms=ts_ms,
            prediction=prediction,
            model_version=served.version,
            horizon_index=served.horizon_index,
            latency_ms=latency,
        )

    def _dispatch(self) -> None:
        """Send every queued window of the first queued model to the inference thread as one batch.

        The rows of one snapshot boundary arrive together (every symbol at once); one forward pass over all
        their windows costs about as much as two single ones, so a burst of ten symbols is predicted in
        about the time of two (bench/decisions.py). The next batch goes when this one is back.
        """
        served = self._pending[0][0]
        batch = [item for item in self._pending if item[0] is served]
        self._pending = [item for item in self._pending if item[0] is not served]
        self._busy = True
        loop = asyncio.get_running_loop()
        done = self._inference.submit(_predict_many, served, [values for _, values, _ in batch])

        def finished(result: concurrent.futures.Future[list[Prediction | Exception]]) -> None:
            loop.call_soon_threadsafe(self._settle, batch, result)

        done.add_done_callback(finished)

    def _settle(
        self,
        batch: list[tuple[ServedModel, np.ndarray, asyncio.Future[Prediction]]],
        result: concurrent.futures.Future[list[Prediction | Exception]],
    ) -> None:
        self._busy = False
        error = result.exception()
        answers: list[Prediction | BaseException] = (
            [error] * len(batch) if error is not None else list(result.result())
        )
        for (_, _, future), answer in zip(batch, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
        if self._pending:
            self._dispatch()

    def _fallback(
        self,
        symbol: str,
        ts_ms: int,
        reason: FallbackReason,
        error: str | None = None,
        *,
        counted: bool = True,
    ) -> GatePrediction:
        if counted:  # (inference failures are counted by predict(), which knows the role)
            self.row_fallbacks[reason.value] += 1
            if self.metrics is not None:
                self.metrics.ml_row_fallbacks.labels(reason=reason.value).inc()
        return GatePrediction(symbol=symbol, ts_ms=ts_ms, prediction=None, model_version=None, fallback=reason,
                              error=error)  # fmt: skip

    # -- validation ---------------------------------------------------------------------------------------

    def validate(self, signal: Signal, prediction: GatePrediction) -> Validation:
        """The validator's verdict on a consensus signal, counted in the agreement and fallback rates."""
        validation = self.validator.validate(signal, prediction)
        self._verdicts.append(validation.verdict)
        self.verdicts_total[validation.verdict.value] += 1
        if self.metrics is not None:
            self.metrics.ml_validations.labels(verdict=validation.verdict.value).inc()
            rates = self.rates()
            self.metrics.ml_agreement_rate.set(rates["agreement_rate"])
            self.metrics.ml_fallback_rate.set(rates["fallback_rate"])
        return validation

    def rates(self) -> dict[str, float]:
        """Over the last RATE_WINDOW validations: agreement = agree / (validations with a model view),
        fallback = fallbacks / validations (0 before the first)."""
        counts = Counter(self._verdicts)
        total = len(self._verdicts)
        viewed = total - counts[Verdict.FALLBACK]
        return {
            "validations": float(total),
            "agreement_rate": counts[Verdict.AGREE] / viewed if viewed else 0.0,
            "disagreement_rate": counts[Verdict.DISAGREE] / viewed if viewed else 0.0,
            "neutral_rate": counts[Verdict.NEUTRAL] / viewed if viewed else 0.0,
            "fallback_rate": counts[Verdict.FALLBACK] / total if total else 0.0,
        }

    def stats(self) -> dict[str, Any]:
        """The gate's state for the API: served versions, rates, fallbacks, latency, refusals."""
        at = self.clock()

        def model(served: ServedModel | None) -> dict[str, Any] | None:
            if served is None:
                return None
            return served.describe() | {"age_hours": round(served.age_hours(at), 3)}

        def latency(role: str) -> dict[str, float]:
            values = np.array(self._latency_ms[role], dtype=np.float64)
            if not len(values):
                return {"count": 0}
            return {
                "count": len(values),
                "p50_ms": round(float(np.percentile(values, 50)), 3),
                "p99_ms": round(float(np.percentile(values, 99)), 3),
            }

        return {
            "production": model(self.production),
            "shadow": model(self.shadow),
            "stale": self.production is not None
            and self.production.age_hours(at) > self.config.max_age_hours,
            "row_predictions": self.row_predictions,
            "row_fallbacks": dict(self.row_fallbacks),
            "verdicts_total": dict(self.verdicts_total),
            "rates": self.rates(),
            "inference": {PRODUCTION: latency(PRODUCTION), SHADOW: latency(SHADOW)},
            "swaps": dict(self.swaps),
            "refused": dict(self.refused),
            "last_reload_ms": self.last_reload_ms,
        }

    # -- hot swap -----------------------------------------------------------------------------------------

    async def reload(self, trigger: str) -> None:
        """Serve the registry's production version (and the newest candidate as shadow) if it changed.

        Never raises for a registry or database failure: the model in use keeps serving, the failure is
        logged (and audited for a refused version). Reloads are serialised.
        """
        async with self._reload_lock:
            self.last_reload_ms = self.clock()
            try:
                production = await self._in_loader(self.source.production)
                candidates = (
                    await self._in_loader(lambda: self.source.list(ModelStatus.CANDIDATE, limit=1))
                    if self.config.shadow_enabled
                    else []
                )
            except Exception as exc:
                log.warning(
                    "model registry unreachable; the served model stays",
                    trigger=trigger, kind=classify(exc).kind.value, error=str(exc),
                )  # fmt: skip
                return
            await self._follow_production(production, trigger)
            newest = candidates[0] if candidates else None
            if newest is not None and production is not None and newest.created_ms <= production.created_ms:
                newest = None  # a shadow is only worth running if it is newer than what trades
            await self._follow_shadow(newest, trigger)

    async def _follow_production(self, manifest: ModelManifest | None, trigger: str) -> None:
        current = self.production
        if manifest is None:
            if current is not None:
                log.warning("no production model in the registry any more; falling back", was=current.version)
                self.production = None
                self._set_model_info(PRODUCTION, None, current)
            return
        if current is not None and current.version == manifest.version:
            return
        served = await self._load(manifest, PRODUCTION, trigger)
        if served is None:
            return
        self.production = served  # the swap: the next row predicts with it
        self.swaps["swapped"] += 1
        self._set_model_info(PRODUCTION, served, current)
        if self.shadow is not None and self.shadow.version == served.version:
            self.shadow = None  # the shadow was promoted: it now trades
            self._set_model_info(SHADOW, None, served)
        log.info(
            "production model swapped", version=served.version, previous=current and current.version,
            trigger=trigger, age_hours=round(served.age_hours(self.clock()), 2),
        )  # fmt: skip

    async def _follow_shadow(self, manifest: ModelManifest | None, trigger: str) -> None:
        current = self.shadow
        if manifest is None:
            if current is not None:
                self.shadow = None
                self._set_model_info(SHADOW, None, current)
            return
        if current is not None and current.version == manifest.version:
            return
        served = await self._load(manifest, SHADOW, trigger)
        if served is not None:
            self.shadow = served
            self._set_model_info(SHADOW, served, current)
            log.info("shadow model loaded", version=served.version, trigger=trigger)

    async def _load(self, manifest: ModelManifest, role: str, trigger: str) -> ServedModel | None:
        version = manifest.version
        if self._refused_sha.get(version) == manifest.artifact_sha256:
            return None  # refused before, and its artifact has not changed since
        try:
            served: ServedModel = await self._in_loader(
                lambda: load_served(
                    self.source, version, spec_hash=self.spec_hash,
                    primary_horizon_s=self.config.primary_horizon_s, factory=self.factory,
                )
            )  # fmt: skip
        except Exception as exc:
            decision = classify(exc)
            if not isinstance(exc, RegistryError | ValueError | TypeError) and decision.retry:
                log.warning("model load failed, will retry", version=version, role=role, error=str(exc))
                return None  # e.g. the database went away mid-load: try again at the next trigger
            reason = f"{type(exc).__name__}: {exc}"
            self.refused[version] = reason
            self._refused_sha[version] = manifest.artifact_sha256
            self.swaps["refused"] += 1
            if self.metrics is not None:
                self.metrics.ml_model_loads.labels(role=role, outcome="refused").inc()
            log.error("model refused; the served model stays", version=version, role=role, reason=reason,
                      serving=self.production and self.production.version)  # fmt: skip
            self._audit(version, role, trigger, success=False, error=reason)
            return None
        if self.metrics is not None:
            self.metrics.ml_model_loads.labels(role=role, outcome="loaded").inc()
        self._audit(version, role, trigger, success=True, details=served.describe())
        return served

    async def _in_loader(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._loader, fn)

    def _audit(
        self, version: str, role: str, trigger: str, *, success: bool,
        error: str | None = None, details: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        if self.audit is None:
            return
        self.audit(
            AuditEvent(
                action=AuditAction.MODEL_LOAD,
                entity_type="model_version",
                entity_id=version,
                actor="ml_gate",
                new_value={"role": role, **(details or {})},
                reason=trigger,
                success=success,
                error_message=error,
                ts=self.clock(),
            )
        )

    def _set_model_info(self, role: str, served: ServedModel | None, previous: ServedModel | None) -> None:
        if self.metrics is None:
            return
        if previous is not None:
            with contextlib.suppress(KeyError):  # never set (metrics attached later)
                self.metrics.ml_model_info.remove(role, previous.version)
        if served is not None:
            self.metrics.ml_model_info.labels(role=role, version=served.version).set(
                served.manifest.created_ms / 1000
            )

    async def close(self) -> None:
        """Stop the worker threads (a prediction in flight finishes first)."""
        await asyncio.to_thread(self._inference.shutdown, wait=True)
        await asyncio.to_thread(self._loader.shutdown, wait=True)


def _predict_many(served: ServedModel, windows: list[np.ndarray]) -> list[Prediction | Exception]:
    """In the inference thread: one forward pass over the windows; a window the batch refuses (a
    non-finite feature) fails alone, the others are predicted one by one."""
    predictor = served.predictor
    if len(windows) == 1:
        try:
            return [predictor.predict(windows[0])]
        except Exception as exc:
            return [exc]
    try:
        batch = predictor.predict_batch(np.stack(windows))
    except Exception:
        out: list[Prediction | Exception] = []
        for window in windows:
            try:
                out.append(predictor.predict(window))
            except Exception as exc:
                out.append(exc)
        return out
    return [batch.row(i) for i in range(len(windows))]
