"""`/api/ml`: the served models and the gate's counters, the registry's versions, reload, predictions on the
live windows, drift reports and retraining runs.

The registry, the drift reports and the retraining runs are read with sync psycopg (they are shared with
Dagster), so every such read runs in a thread. They work on a recording-only daemon too; the gate's routes
(status, reload, predict) need the decisions (503 otherwise).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

import msgspec
import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query
from psycopg import Connection

from infra.db.connection import Database
from infra.db.repositories.orchestration import (
    DriftReportRecord,
    DriftReportRepository,
    RetrainingRunRecord,
    RetrainingRunRepository,
)
from ml.evaluation.metrics import METRICS, PROMOTION_METRIC
from ml.gate import GateEvidence
from ml.registry import ModelNotFound, ModelRegistry, RegistryError
from schemas.enums import AuditAction, ModelStatus
from schemas.model import N_CLASSES, ModelManifest
from trading_daemon.api.audit import audit_action
from trading_daemon.api.context import DaemonContext
from trading_daemon.api.deps import Admin, Daemon, Viewer
from trading_daemon.api.models_ml import (
    DataWindowOut,
    DriftHistory,
    DriftPoint,
    DriftReportOut,
    GateDecisionOut,
    GateRates,
    HorizonMetricsOut,
    HorizonPrediction,
    InferenceLatency,
    LossCurve,
    MLStatus,
    ModelDetail,
    ModelSummary,
    PredictBatchOut,
    PredictBatchRequest,
    PredictionOut,
    PredictRequest,
    ProductionModels,
    ReloadResult,
    RetrainingRunOut,
    ServedModelOut,
    Symbol,
)
from trading_daemon.decisions.runtime import DecisionsRuntime
from trading_daemon.ml_gate.prediction import FallbackReason, GatePrediction
from trading_daemon.ml_gate.served import ServedModel

router = APIRouter(prefix="/api/ml", tags=["ml"])

T = TypeVar("T")
SEVERITY_LEVEL = {"none": 0, "low": 1, "medium": 2, "high": 3}
Version = Annotated[str, Path(min_length=1, max_length=100, description="A model version.")]


# ---- pure mapping ----------------------------------------------------------------------------------------


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def horizon_rows(manifest: ModelManifest, model: str | None = None) -> list[HorizonMetricsOut]:
    """Per horizon, the test-fold figures of `model` (the version's own by default): from the run's evaluation
    in the params when saved there (it has the sample counts), else from the flat manifest metrics
    (`accuracy_10s`, and `<model>.accuracy_10s` for the run's other models)."""
    own = model is None or model == manifest.params.get("run_model")
    name = manifest.params.get("run_model") if model is None else model
    evaluation = manifest.params.get("evaluation")
    models = evaluation.get("models") if isinstance(evaluation, dict) else None
    table = models.get(name) if isinstance(models, dict) and name else None
    prefix = "" if own else f"{model}."
    rows = []
    for h in manifest.horizons_s:
        saved = table.get(f"{h}s") if isinstance(table, dict) else None
        if isinstance(saved, dict):
            values = {m: _finite(saved.get(m)) for m in METRICS}
            n = saved.get("n")
            rows.append(
                HorizonMetricsOut.model_validate(
                    values | {"horizon_s": h, "n": n if isinstance(n, int) else None}
                )
            )
        else:
            values = {m: _finite(manifest.metrics.get(f"{prefix}{m}_{h}s")) for m in METRICS}
            rows.append(HorizonMetricsOut.model_validate(values | {"horizon_s": h}))
    return rows


def baseline_names(manifest: ModelManifest) -> list[str]:
    """The run's other models: the evaluation's rows, else the prefixes of the flat metrics."""
    evaluation = manifest.params.get("evaluation")
    if isinstance(evaluation, dict) and isinstance(evaluation.get("models"), dict):
        names = set(evaluation["models"])
    else:
        names = {key.partition(".")[0] for key in manifest.metrics if "." in key}
    return sorted(names - {manifest.params.get("run_model")})


def model_summary(manifest: ModelManifest) -> ModelSummary:
    return ModelSummary(
        version=manifest.version,
        model_type=manifest.model_type,
        status=manifest.status,
        created_ms=manifest.created_ms,
        feature_spec_hash=manifest.feature_spec_hash,
        definitions_version=manifest.definitions_version,
        horizons_s=list(manifest.horizons_s),
        parent_version=manifest.parent_version,
        data_window=DataWindowOut.model_validate(manifest.data_window),
        metrics=horizon_rows(manifest),
        promotion_metric=PROMOTION_METRIC,
        promotion_value=_finite(manifest.metrics.get(PROMOTION_METRIC)),
        backtest={
            key.removeprefix("backtest_"): value
            for key, value in manifest.metrics.items()
            if key.startswith("backtest_") and math.isfinite(value)
        },
    )


def loss_curve(params: Mapping[str, Any]) -> LossCurve | None:
    """The training history a network's version carries (`ml.training.TrainingHistory.to_dict`)."""
    history = params.get("history")
    if not isinstance(history, dict) or not history.get("records"):
        return None
    records = history["records"]
    return LossCurve(
        epochs=[int(r["epoch"]) for r in records],
        train_loss=[_finite(r.get("train_loss")) for r in records],
        val_loss=[_finite(r.get("val_loss")) for r in records],
        learning_rate=[_finite(r.get("learning_rate")) for r in records],
        best_epoch=int(history.get("best_epoch", -1)),
        stopped_early=bool(history.get("stopped_early", False)),
    )


def confusion_matrices(evidence: GateEvidence, model: str) -> dict[int, list[list[int]]]:
    """Per horizon, counts [true][predicted] of `model`'s calibrated test-fold probabilities; {} when the
    evidence holds no probabilities of that model."""
    proba = evidence.proba.get(model)
    if proba is None:
        return {}
    predicted = np.asarray(proba).argmax(axis=-1)
    truth = np.asarray(evidence.direction, dtype=np.int64)
    out = {}
    for k, h in enumerate(evidence.horizons_s):
        cells = np.bincount(truth[:, k] * N_CLASSES + predicted[:, k], minlength=N_CLASSES * N_CLASSES)
        out[int(h)] = cells.reshape(N_CLASSES, N_CLASSES).tolist()
    return out


def model_detail(
    manifest: ModelManifest,
    decisions: list[dict[str, Any]],
    evidence: GateEvidence | None,
    evidence_error: str | None = None,
) -> ModelDetail:
    """A version's detail from its manifest, the gate's decision rows and the run's evidence (if saved)."""
    params = manifest.params
    run_model = params.get("run_model")
    metrics = horizon_rows(manifest)
    if evidence is not None and isinstance(run_model, str):
        matrices = confusion_matrices(evidence, run_model)
        metrics = [m.model_copy(update={"confusion_matrix": matrices.get(m.horizon_s)}) for m in metrics]
    train_seconds = params.get("train_seconds")
    backtest = params.get("backtest_summary")
    return ModelDetail(
        **model_summary(manifest).model_dump(exclude={"metrics"}),
        metrics=metrics,
        artifact_sha256=manifest.artifact_sha256,
        code_version=manifest.code_version,
        run_model=run_model if isinstance(run_model, str) else None,
        train_seconds=_finite(train_seconds),
        baselines={name: horizon_rows(manifest, name) for name in baseline_names(manifest)},
        loss_curve=loss_curve(params),
        backtest_summary=backtest if isinstance(backtest, dict) else None,
        evidence_error=evidence_error,
        gate_decisions=[GateDecisionOut.model_validate(row) for row in decisions],
    )


def _served(description: dict[str, Any] | None) -> ServedModelOut | None:
    return None if description is None else ServedModelOut.model_validate(description)


def fallback_now(stats: Mapping[str, Any]) -> tuple[FallbackReason | None, str | None]:
    """Why every row falls back at the moment (from `MLGate.stats()`), or (None, None) while a model serves."""
    production = stats["production"]
    if production is None:
        refused = stats.get("refused") or {}
        detail = (
            "; ".join(f"{v} refused: {why}" for v, why in refused.items()) or "no production model loaded"
        )
        return FallbackReason.NO_MODEL, detail
    if stats.get("stale"):
        return FallbackReason.STALE_MODEL, f"{production['version']} is {production['age_hours']:.1f} h old"
    return None, None


def ml_status(stats: Mapping[str, Any], registry_production: ModelManifest | None) -> MLStatus:
    reason, detail = fallback_now(stats)
    rates = dict(stats["rates"])
    rates["validations"] = int(rates["validations"])
    return MLStatus(
        production=_served(stats["production"]),
        shadow=_served(stats["shadow"]),
        stale=bool(stats["stale"]),
        fallback_reason=reason,
        fallback_detail=detail,
        row_predictions=stats["row_predictions"],
        row_fallbacks=stats["row_fallbacks"],
        verdicts_total=stats["verdicts_total"],
        rates=GateRates.model_validate(rates),
        inference={role: InferenceLatency.model_validate(v) for role, v in stats["inference"].items()},
        swaps=stats["swaps"],
        refused=stats["refused"],
        last_reload_ms=stats["last_reload_ms"],
        registry_production=None if registry_production is None else model_summary(registry_production),
    )


def prediction_out(answer: GatePrediction) -> PredictionOut:
    out = PredictionOut(
        symbol=answer.symbol,
        ts_ms=answer.ts_ms,
        model_version=answer.model_version,
        fallback=answer.fallback,
        error=answer.error,
        latency_ms=round(answer.latency_ms, 3),
    )
    p = answer.prediction
    if p is None:
        return out
    horizons = [
        HorizonPrediction(
            horizon_s=h,
            direction=p.direction[k],
            p_down=float(p.probabilities[k][0]),
            p_flat=float(p.probabilities[k][1]),
            p_up=float(p.probabilities[k][2]),
            expected_return_bps=float(p.expected_return_bps[k]),
        )
        for k, h in enumerate(p.horizons_s)
    ]
    return out.model_copy(
        update={
            "primary_horizon_s": p.horizons_s[answer.horizon_index],
            "direction": answer.direction,
            "confidence": float(p.confidence),
            "horizons": horizons,
        }
    )


def drift_point(report: DriftReportRecord) -> DriftPoint:
    return DriftPoint.model_validate(
        msgspec.structs.asdict(report) | {"severity_level": SEVERITY_LEVEL[report.severity]}
    )


def drift_history(reports: list[DriftReportRecord], *, symbol: str | None, since_ms: int) -> DriftHistory:
    """The reports whose window ends at or after `since_ms`, oldest first (the chart's x axis)."""
    kept = sorted((r for r in reports if r.window_end_ms >= since_ms), key=lambda r: (r.window_end_ms, r.id))
    return DriftHistory(symbol=symbol, since_ms=since_ms, points=[drift_point(r) for r in kept])


def retraining_out(run: RetrainingRunRecord, dagster_ui_url: str) -> RetrainingRunOut:
    url = f"{dagster_ui_url.rstrip('/')}/runs/{run.dagster_run_id}"
    return RetrainingRunOut.model_validate(msgspec.structs.asdict(run) | {"dagster_run_url": url})


# ---- I/O helpers -----------------------------------------------------------------------------------------


def registry_of(ctx: DaemonContext) -> ModelRegistry:
    """The decisions' registry when trading, else one over the same database and models directory."""
    if ctx.decisions is not None:
        return ctx.decisions.registry
    return ModelRegistry(ctx.db, ctx.settings.models_dir)


def _with_connection(db: Database, read: Callable[[Connection[Any]], T]) -> T:
    with db.connect(autocommit=True) as conn:
        return read(conn)


async def _read(db: Database, read: Callable[[Connection[Any]], T]) -> T:
    return await asyncio.to_thread(_with_connection, db, read)


def _load_detail(registry: ModelRegistry, version: str) -> ModelDetail:
    """In a thread: the manifest (ModelNotFound), the gate's decisions and the run's evidence."""
    manifest = registry.get(version)
    decisions = registry.gate_decisions(version)
    evidence, error = None, None
    try:
        data = registry.evidence(version)
        evidence = None if data is None else GateEvidence.from_bytes(data)
    except (RegistryError, ValueError, OSError) as exc:  # the detail still shows without the matrices
        error = f"{type(exc).__name__}: {exc}"
    return model_detail(manifest, decisions, evidence, error)


def _version(served: ServedModel | None) -> str | None:
    return None if served is None else served.version


async def _predict(decisions: DecisionsRuntime, symbol: str) -> GatePrediction:
    """The gate's view of the symbol's newest live window, as the engine asks it for a row."""
    window = decisions.features.window(symbol)
    ts = window.ts_ms if window is not None else decisions.exchange_now_ms()
    return await decisions.gate.predict(symbol, ts, window, counted=False)


# ---- routes ----------------------------------------------------------------------------------------------


@router.get("/status", response_model=MLStatus, summary="The served models, fallbacks and gate counters")
async def status(ctx: Daemon, user: Viewer) -> MLStatus:
    decisions = ctx.require_decisions()
    production = await asyncio.to_thread(decisions.registry.production)
    return ml_status(decisions.gate.stats(), production)


@router.get("/models", response_model=list[ModelSummary], summary="Registered model versions, newest first")
async def models(
    ctx: Daemon,
    user: Viewer,
    status: Annotated[ModelStatus | None, Query(description="Only versions of this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[ModelSummary]:
    registry = registry_of(ctx)
    manifests = await asyncio.to_thread(registry.list, status, limit=limit)
    return [model_summary(m) for m in manifests]


@router.get("/production", response_model=ProductionModels, summary="The production and shadow versions")
async def production(ctx: Daemon, user: Viewer) -> ProductionModels:
    manifest = await asyncio.to_thread(registry_of(ctx).production)
    gate = None if ctx.decisions is None else ctx.decisions.gate
    shadow = None if gate is None or gate.shadow is None else gate.shadow.manifest
    return ProductionModels(
        production=None if manifest is None else model_summary(manifest),
        shadow=None if shadow is None else model_summary(shadow),
        serving=None if gate is None else _version(gate.production),
    )


@router.get("/models/{version}", response_model=ModelDetail, summary="A version's metrics, curves and gate")
async def model(ctx: Daemon, user: Viewer, version: Version) -> ModelDetail:
    try:
        return await asyncio.to_thread(_load_detail, registry_of(ctx), version)
    except ModelNotFound:
        raise HTTPException(404, f"unknown model version {version!r}: see GET /api/ml/models") from None


@router.post("/reload", response_model=ReloadResult, summary="Follow the registry's production now (admin)")
async def reload(ctx: Daemon, user: Admin) -> ReloadResult:
    gate = ctx.require_decisions().gate
    trigger = f"api:{user.username}"
    before = {"production": _version(gate.production), "shadow": _version(gate.shadow)}
    await gate.reload(trigger)  # never raises: a failure leaves the served model and is logged/audited
    after = {"production": _version(gate.production), "shadow": _version(gate.shadow)}
    await audit_action(
        ctx, user, AuditAction.MODEL_LOAD, "model_version", after["production"] or "none",
        reason=trigger, old=before, new=after | {"refused": dict(gate.refused)},
    )  # fmt: skip
    return ReloadResult(
        trigger=trigger,
        production_before=before["production"],
        production=after["production"],
        shadow_before=before["shadow"],
        shadow=after["shadow"],
        changed=before != after,
        refused=dict(gate.refused),
    )


@router.post(
    "/predict",
    response_model=PredictionOut,
    summary="The production model on a symbol's newest live window",
    responses={409: {"description": "No prediction: the gate's fallback reason (no model, no window…)."}},
)
async def predict(ctx: Daemon, user: Viewer, body: PredictRequest) -> PredictionOut:
    decisions = ctx.require_decisions()
    answer = await _predict(decisions, ctx.require_symbol(body.symbol))
    if answer.prediction is None:
        reason = answer.fallback.value if answer.fallback is not None else "unknown"
        detail = f"no prediction for {body.symbol}: {reason}" + (f" ({answer.error})" if answer.error else "")
        raise HTTPException(409, detail)
    return prediction_out(answer)


@router.post(
    "/predict/batch",
    response_model=PredictBatchOut,
    summary="Predictions for several symbols (one batch in the gate); a fallback is an item, not an error",
)
async def predict_batch(ctx: Daemon, user: Viewer, body: PredictBatchRequest) -> PredictBatchOut:
    decisions = ctx.require_decisions()
    symbols = [ctx.require_symbol(s) for s in body.symbols]
    answers = await asyncio.gather(*(_predict(decisions, s) for s in symbols))
    return PredictBatchOut(predictions=[prediction_out(a) for a in answers])


@router.get("/drift", response_model=list[DriftReportOut], summary="Drift reports, newest first")
async def drift_reports(
    ctx: Daemon,
    user: Viewer,
    symbol: Annotated[Symbol | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DriftReportOut]:
    reports = await _read(ctx.db, lambda c: DriftReportRepository(c).recent(limit=limit, symbol=symbol))
    return [DriftReportOut.model_validate(r, from_attributes=True) for r in reports]


# Declared before /drift/{report_id}: "history" is not an id.
@router.get("/drift/history", response_model=DriftHistory, summary="Drift severity over time, for a chart")
async def drift_severity_history(
    ctx: Daemon,
    user: Viewer,
    symbol: Annotated[Symbol | None, Query()] = None,
    since_ms: Annotated[int, Query(ge=0, description="Reports whose window ends at or after this.")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000, description="Newest reports read at most.")] = 1000,
) -> DriftHistory:
    reports = await _read(ctx.db, lambda c: DriftReportRepository(c).recent(limit=limit, symbol=symbol))
    return drift_history(reports, symbol=symbol, since_ms=since_ms)


@router.get("/drift/{report_id}", response_model=DriftReportOut, summary="One drift report")
async def drift_report(
    ctx: Daemon, user: Viewer, report_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
) -> DriftReportOut:
    report = await _read(ctx.db, lambda c: DriftReportRepository(c).get(report_id))
    if report is None:
        raise HTTPException(404, f"unknown drift report {report_id}")
    return DriftReportOut.model_validate(report, from_attributes=True)


@router.get("/retraining", response_model=list[RetrainingRunOut], summary="The last retraining runs")
async def retraining_runs(
    ctx: Daemon, user: Viewer, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> list[RetrainingRunOut]:
    runs = await _read(ctx.db, lambda c: RetrainingRunRepository(c).recent(limit=limit))
    return [retraining_out(r, ctx.api.dagster_ui_url) for r in runs]
