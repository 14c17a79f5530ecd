"""The ML routes: their mapping of the gate, the registry, drift reports and retraining runs (real records,
no daemon), then every route against a running daemon on the paper exchange (`live_api`, slow)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import numpy as np
import pytest
import torch
from pydantic import ValidationError

from infra.db.connection import Database
from infra.db.repositories.audit import AuditRepository
from infra.db.repositories.orchestration import (
    DriftReportRecord,
    DriftReportRepository,
    RetrainingRunRecord,
    RetrainingRunRepository,
)
from infra.settings import code_defaults
from ml.evaluation import EvaluationReport
from ml.gate import GateEvidence
from ml.inference import Prediction
from ml.models import create_model
from ml.registry import HYBRID_CNN_LSTM, ModelRegistry
from ml.training import EpochRecord, TrainingHistory
from schemas.enums import AuditAction, ModelStatus
from schemas.model import WINDOW, DataWindow, ModelManifest
from testkit.rows import T0_MS
from tests.ml.synthetic_windows import TINY
from tests.trading_daemon.api.conftest import LiveApi
from tests.trading_daemon.ml_gate.models import PREPROCESSOR, SPEC
from trading_daemon.api.models_ml import PredictBatchRequest
from trading_daemon.api.routes.ml import (
    confusion_matrices,
    drift_history,
    fallback_now,
    horizon_rows,
    loss_curve,
    ml_status,
    model_detail,
    model_summary,
    prediction_out,
    retraining_out,
)
from trading_daemon.ml_gate import FallbackReason, GatePrediction, MLGate

HORIZONS = (10, 30, 60)
N = 40


# ---- a training run's records, made by the real evaluation and training types -----------------------------


def run_evidence(seed: int = 3) -> tuple[EvaluationReport, GateEvidence]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, size=(N, len(HORIZONS)))
    proba = {name: rng.dirichlet(np.ones(3), size=(N, len(HORIZONS))) for name in ("cnn_lstm", "logistic")}
    report = EvaluationReport(horizons_s=HORIZONS)
    for name, p in proba.items():
        report.add(name, p, truth)
    evidence = GateEvidence(
        horizons_s=HORIZONS, ts_ms=T0_MS + np.arange(N) * 1000, symbols=np.array(["BTCUSDT"] * N),
        direction=truth, proba=proba, rows=np.zeros((WINDOW, 4)), ends=np.full(N, WINDOW - 1),
    )  # fmt: skip
    return report, evidence


def history() -> TrainingHistory:
    records = [
        EpochRecord(epoch=e, train_loss=1.1 - 0.1 * e, val_loss=1.2 - 0.05 * e, val_direction_loss=1.0,
                    val_accuracy=[0.4, 0.4, 0.4], learning_rate=1e-3, max_grad_norm=1.0,
                    max_clipped_grad_norm=1.0, seconds=0.1)
        for e in range(3)
    ]  # fmt: skip
    return TrainingHistory(records=records, best_epoch=2, best_val_loss=1.1)


def run_params(report: EvaluationReport) -> dict[str, object]:
    return {
        "model_config": TINY.to_dict(), "run_model": "cnn_lstm", "evaluation": report.to_dict(),
        "history": history().to_dict(), "backtest_summary": {"n_trades": 4, "total_pnl_bps": 1.5},
        "train_seconds": 2.5,
    }  # fmt: skip


def run_metrics(report: EvaluationReport) -> dict[str, float]:
    metrics = dict(report.metrics("cnn_lstm")) | {"backtest_n_trades": 4.0, "backtest_total_pnl_bps": 1.5}
    return metrics | {f"logistic.{k}": v for k, v in report.metrics("logistic").items()}


def manifest(**changes: object) -> ModelManifest:
    report, _ = run_evidence()
    base = ModelManifest(
        version="20260101T000000Z-0123abcd", model_type=HYBRID_CNN_LSTM, created_ms=T0_MS,
        feature_spec_hash="a" * 64, definitions_version=1, feature_names=["x"], horizons_s=list(HORIZONS),
        artifact_path="v/weights.pt", artifact_sha256="b" * 64,
        data_window=DataWindow(symbols=["BTCUSDT"], start_ms=T0_MS, end_ms=T0_MS + 60_000, n_test=N),
        code_version="git:abc", metrics=run_metrics(report), params=run_params(report),
    )  # fmt: skip
    return msgspec.structs.replace(base, **changes)


# ---- mapping --------------------------------------------------------------------------------------------


def test_per_horizon_metrics_come_from_the_runs_evaluation_else_from_the_flat_metrics() -> None:
    report, _ = run_evidence()
    rows = horizon_rows(manifest())
    assert [r.horizon_s for r in rows] == list(HORIZONS)
    assert rows[0].n == N and rows[0].macro_f1 == report.metrics("cnn_lstm")["macro_f1_10s"]
    flat = horizon_rows(manifest(params={}))  # a version saved without its evaluation
    assert flat[1].accuracy == report.metrics("cnn_lstm")["accuracy_30s"] and flat[1].n is None
    baseline = horizon_rows(manifest(params={}), "logistic")
    assert baseline[2].log_loss == report.metrics("logistic")["log_loss_60s"]
    summary = model_summary(manifest())
    assert summary.promotion_metric == "macro_f1_10s" and summary.promotion_value == rows[0].macro_f1
    assert summary.backtest == {"n_trades": 4.0, "total_pnl_bps": 1.5}
    assert summary.status is ModelStatus.CANDIDATE


def test_detail_has_confusion_matrices_loss_curve_baselines_and_gate_decisions() -> None:
    _, evidence = run_evidence()
    decision = {
        "id": 7, "version": "v", "decided_ms": T0_MS, "promoted": False, "metric": "macro_f1_10s",
        "candidate_value": 0.3, "candidate_low": 0.2, "candidate_high": 0.4, "production_version": None,
        "reason": "not better", "details": {"gain": float("nan")},
    }  # fmt: skip
    detail = model_detail(manifest(), [decision], evidence)
    truth = evidence.direction
    predicted = evidence.proba["cnn_lstm"].argmax(axis=-1)
    for k, row in enumerate(detail.metrics):
        matrix = np.array(row.confusion_matrix)
        assert matrix.sum() == N and matrix.trace() == int((truth[:, k] == predicted[:, k]).sum())
        assert matrix[2].sum() == int((truth[:, k] == 2).sum())  # rows are the true classes
    assert list(detail.baselines) == ["logistic"] and detail.baselines["logistic"][0].n == N
    assert detail.loss_curve is not None and detail.loss_curve.epochs == [0, 1, 2]
    assert (
        detail.loss_curve.train_loss == pytest.approx([1.1, 1.0, 0.9]) and detail.loss_curve.best_epoch == 2
    )
    assert detail.gate_decisions[0].reason == "not better" and detail.train_seconds == 2.5
    assert '"gain":null' in detail.model_dump_json()  # NaN is null in JSON
    assert confusion_matrices(evidence, "no-such-model") == {}
    bare = model_detail(manifest(params={"model_config": {}}), [], None, "ArtifactMissing: gone")
    assert bare.loss_curve is None and bare.metrics[0].confusion_matrix is None
    assert bare.evidence_error == "ArtifactMissing: gone" and bare.run_model is None
    assert loss_curve({"history": {"records": []}}) is None


def test_status_says_why_rows_fall_back(db: Database, tmp_path: Path) -> None:
    gate = MLGate(ModelRegistry(db, tmp_path), code_defaults().ml_gate, spec_hash=SPEC.spec_hash)
    status = ml_status(gate.stats(), manifest())
    assert status.production is None and status.fallback_reason is FallbackReason.NO_MODEL
    assert status.registry_production is not None and status.rates.validations == 0
    gate.refused["v1"] = "FeatureSpecMismatch: other spec"
    assert fallback_now(gate.stats()) == (
        FallbackReason.NO_MODEL,
        "v1 refused: FeatureSpecMismatch: other spec",
    )
    served = {"version": "v2", "age_hours": 30.0}
    assert fallback_now({"production": served, "stale": True}) == (
        FallbackReason.STALE_MODEL,
        "v2 is 30.0 h old",
    )
    assert fallback_now({"production": served, "stale": False}) == (None, None)


def test_a_prediction_and_a_fallback_map_to_the_same_shape() -> None:
    probabilities = np.array([[0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    p = Prediction(probabilities=probabilities, direction=(0, 1, -1), confidence=0.7,
                   expected_return_bps=(0.1, 2.0, -3.0), horizons_s=HORIZONS, latency_ms=1.0)  # fmt: skip
    out = prediction_out(GatePrediction("BTCUSDT", T0_MS, p, "v1", horizon_index=1, latency_ms=2.34567))
    assert out.primary_horizon_s == 30 and out.direction == 1 and out.confidence == 0.7
    assert out.horizons[2].p_down == 0.6 and out.horizons[2].expected_return_bps == -3.0
    assert out.latency_ms == 2.346 and out.fallback is None
    fallback = prediction_out(GatePrediction("ETHUSDT", T0_MS, None, None, fallback=FallbackReason.NO_WINDOW))
    assert (
        fallback.fallback is FallbackReason.NO_WINDOW
        and fallback.horizons == []
        and fallback.direction is None
    )


def test_batch_symbols_are_distinct_and_well_formed() -> None:
    assert PredictBatchRequest(symbols=["BTCUSDT", "ETHUSDT"]).symbols == ["BTCUSDT", "ETHUSDT"]
    with pytest.raises(ValidationError, match="repeated: BTCUSDT"):
        PredictBatchRequest(symbols=["BTCUSDT", "ETHUSDT", "BTCUSDT"])
    for bad in ([], ["btcusdt"], ["BTC USDT"]):
        with pytest.raises(ValidationError):
            PredictBatchRequest(symbols=bad)


def drift(report_id: int, symbol: str, end_ms: int, severity: str) -> DriftReportRecord:
    return DriftReportRecord(
        id=report_id, created_ms=end_ms + 5, partition_key=f"{symbol}|d", symbol=symbol, window_start_ms=end_ms - 1000,
        window_end_ms=end_ms, production_version=None, severity=severity, feature_drift_score=0.1, prediction_psi=None,  # type: ignore[arg-type]
        accuracy_drop=None, drivers=[], drifted_features=[], recommendation="", html_path="r.html", json_path="r.json",
        n_reference=10, n_current=10,
    )  # fmt: skip


def test_drift_history_is_oldest_first_from_since_and_retraining_links_into_dagster() -> None:
    reports = [
        drift(3, "BTCUSDT", 3000, "high"),
        drift(2, "BTCUSDT", 2000, "none"),
        drift(1, "BTCUSDT", 1000, "low"),
    ]
    history_ = drift_history(reports, symbol="BTCUSDT", since_ms=2000)
    assert [(p.id, p.severity, p.severity_level) for p in history_.points] == [(2, "none", 0), (3, "high", 3)]
    run = RetrainingRunRecord(
        dagster_run_id="abc-123", trigger="drift", status="kept", reason="r", id=1, created_ms=5
    )
    assert (
        retraining_out(run, "http://127.0.0.1:3000/").dagster_run_url == "http://127.0.0.1:3000/runs/abc-123"
    )


# ---- against a running daemon -----------------------------------------------------------------------------

READS = [
    "/api/ml/status", "/api/ml/models", "/api/ml/production", "/api/ml/drift", "/api/ml/drift/history",
    "/api/ml/retraining",
]  # fmt: skip


def register_run(registry: ModelRegistry) -> ModelManifest:
    """A tiny CNN-LSTM saved as a training run saves one: evaluation, history and gate evidence."""
    report, evidence = run_evidence()
    torch.manual_seed(11)
    return registry.save(
        create_model(TINY).eval(), model_type=HYBRID_CNN_LSTM, params=run_params(report),
        preprocessor_dict=PREPROCESSOR.to_dict(), metrics=run_metrics(report),
        data_window=DataWindow(symbols=["BTCUSDT"], start_ms=T0_MS, end_ms=T0_MS + 60_000, n_test=N),
        horizons_s=list(HORIZONS), feature_spec=SPEC, evidence=evidence.to_bytes(),
    )  # fmt: skip


@pytest.mark.slow(seconds=55)
async def test_ml_routes_need_a_token_and_reload_needs_an_admin(live_api: LiveApi) -> None:
    anon, viewer, trader = live_api.client(), live_api.client("viewer"), live_api.client("trader")
    for path in READS:
        assert (await anon.get(path)).status_code == 401, path
        response = await viewer.get(path)
        assert response.status_code == 200, (path, response.text)
    for method, path in [
        ("POST", "/api/ml/reload"),
        ("POST", "/api/ml/predict"),
        ("GET", "/api/ml/models/x"),
    ]:
        assert (await anon.request(method, path)).status_code == 401, path
    for client in (viewer, trader):
        response = await client.post("/api/ml/reload")
        assert response.status_code == 403 and "admin" in response.json()["detail"]


@pytest.mark.slow
async def test_status_production_and_reload_audited(live_api: LiveApi) -> None:
    viewer, admin = live_api.client("viewer"), live_api.client("admin")
    status = (await viewer.get("/api/ml/status")).json()
    assert status["production"] is not None and status["fallback_reason"] is None
    assert status["registry_production"]["version"] == status["production"]["version"]
    production = (await viewer.get("/api/ml/production")).json()
    assert production["serving"] == production["production"]["version"] == status["production"]["version"]
    reloaded = await admin.post("/api/ml/reload")
    assert reloaded.status_code == 200, reloaded.text
    body = reloaded.json()
    assert body["trigger"] == "api:admin" and body["production"] == status["production"]["version"]
    rows = await AuditRepository(live_api.ctx.pool).find(action=AuditAction.MODEL_LOAD, limit=20)
    assert any(r.actor == "user:admin" and r.reason == "api:admin" for r in rows)


@pytest.mark.slow
async def test_model_list_and_detail(live_api: LiveApi) -> None:
    viewer = live_api.client("viewer")
    registry = ModelRegistry(live_api.db, live_api.ctx.settings.models_dir)
    saved = await asyncio.to_thread(register_run, registry)
    candidates = (await viewer.get("/api/ml/models", params={"status": "candidate", "limit": 5})).json()
    assert saved.version in [m["version"] for m in candidates]
    assert all(m["status"] == "candidate" for m in candidates)
    detail = await viewer.get(f"/api/ml/models/{saved.version}")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert [m["horizon_s"] for m in body["metrics"]] == list(HORIZONS)
    assert all(sum(map(sum, m["confusion_matrix"])) == N for m in body["metrics"])
    assert body["loss_curve"]["epochs"] == [0, 1, 2] and list(body["baselines"]) == ["logistic"]
    assert body["evidence_error"] is None and body["gate_decisions"] == []
    missing = await viewer.get("/api/ml/models/no-such-version")
    assert missing.status_code == 404 and "no-such-version" in missing.json()["detail"]
    for path in ("/api/ml/models?status=bogus", "/api/ml/models?limit=0", "/api/ml/models?limit=501"):
        assert (await viewer.get(path)).status_code == 422, path


@pytest.mark.slow
async def test_drift_reports_history_and_retraining_runs(live_api: LiveApi) -> None:
    viewer = live_api.client("viewer")
    now = int(time.time() * 1000)

    def arrange() -> list[int]:
        arranged = (
            ("BTCUSDT", 7_200_000, "low"),
            ("BTCUSDT", 3_600_000, "high"),
            ("ETHUSDT", 3_600_000, "none"),
        )
        with live_api.db.connect(autocommit=True) as conn:
            repo = DriftReportRepository(conn)
            ids = [repo.add(drift(0, s, now - age, severity)).id or 0 for s, age, severity in arranged]
            run = RetrainingRunRecord(
                dagster_run_id="run-api-1",
                trigger="drift",
                status="failed",
                reason="test",
                drift_report_ids=ids[1:2],
            )
            RetrainingRunRepository(conn).add(run)
            return ids

    ids = await asyncio.to_thread(arrange)
    reports = (await viewer.get("/api/ml/drift", params={"symbol": "BTCUSDT"})).json()
    assert [r["id"] for r in reports] == [ids[1], ids[0]]
    one = (await viewer.get(f"/api/ml/drift/{ids[2]}")).json()
    assert one["symbol"] == "ETHUSDT" and one["severity"] == "none"
    unknown = await viewer.get("/api/ml/drift/987654321")
    assert unknown.status_code == 404 and "987654321" in unknown.json()["detail"]
    chart = (
        await viewer.get("/api/ml/drift/history", params={"symbol": "BTCUSDT", "since_ms": now - 5_000_000})
    ).json()
    assert [(p["id"], p["severity_level"]) for p in chart["points"]] == [(ids[1], 3)]
    runs = (await viewer.get("/api/ml/retraining", params={"limit": 5})).json()
    assert runs[0]["dagster_run_id"] == "run-api-1" and runs[0]["drift_report_ids"] == [ids[1]]
    assert runs[0]["dagster_run_url"] == f"{live_api.ctx.api.dagster_ui_url}/runs/run-api-1"
    for path in ("/api/ml/drift/abc", "/api/ml/drift/0", "/api/ml/drift?symbol=btc", "/api/ml/drift?limit=0",
                 "/api/ml/drift/history?since_ms=-1", "/api/ml/retraining?limit=201"):  # fmt: skip
        response = await viewer.get(path)
        assert response.status_code == 422, (path, response.text)


@pytest.mark.slow
async def test_predictions_on_the_live_windows(live_api: LiveApi) -> None:
    viewer = live_api.client("viewer")
    bad = [
        ({"symbols": []}, 422, "symbols"), ({"symbols": ["BTCUSDT", "BTCUSDT"]}, 422, "repeated"),
        ({"symbols": ["btc"]}, 422, "symbols"), ({"symbols": ["DOGEUSDT"]}, 404, "DOGEUSDT"), ({}, 422, "symbols"),
    ]  # fmt: skip
    for body, code, named in bad:
        response = await viewer.post("/api/ml/predict/batch", json=body)
        assert response.status_code == code and named in response.text, (body, response.text)
    assert (await viewer.post("/api/ml/predict", json={"symbol": "DOGEUSDT"})).status_code == 404
    assert (await viewer.post("/api/ml/predict", json={"symbol": 5})).status_code == 422
    decisions = live_api.ctx.decisions
    assert decisions is not None
    first = await viewer.post("/api/ml/predict", json={"symbol": "BTCUSDT"})
    if decisions.features.window("BTCUSDT") is None:
        assert first.status_code == 409 and "no_window" in first.json()["detail"]
    for _ in range(900):  # a window is WINDOW consecutive rows, one a second
        if all(decisions.features.window(s) is not None for s in ("BTCUSDT", "ETHUSDT")):
            break
        await asyncio.sleep(0.1)
    one = await viewer.post("/api/ml/predict", json={"symbol": "BTCUSDT"})
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["model_version"] == decisions.gate.production.version  # type: ignore[union-attr]
    assert body["direction"] in (-1, 0, 1) and [h["horizon_s"] for h in body["horizons"]] == [10, 30, 60]
    assert all(abs(h["p_down"] + h["p_flat"] + h["p_up"] - 1) < 1e-6 for h in body["horizons"])
    batch = (await viewer.post("/api/ml/predict/batch", json={"symbols": ["ETHUSDT", "BTCUSDT"]})).json()
    assert [p["symbol"] for p in batch["predictions"]] == ["ETHUSDT", "BTCUSDT"]
    assert all(p["model_version"] is not None for p in batch["predictions"])
