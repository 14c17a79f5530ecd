"""Request and response models of the ML routes (`routes/ml.py`): the served models and the gate's counters,
the registry's versions with their test-fold metrics, predictions, drift reports and retraining runs.

Metrics are plain floats (a NaN, e.g. the ECE of a version saved without it, is sent as null); time is
integer milliseconds UTC. Nothing here is money.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from infra.db.repositories.orchestration import DriftSeverity, RetrainingStatus, RetrainingTrigger
from schemas.enums import ModelStatus
from schemas.model import CLASS_NAMES
from trading_daemon.api.models import Model
from trading_daemon.ml_gate.prediction import FallbackReason

# A symbol as the exchange spells it; whether the daemon streams it is the route's check (404).
Symbol = Annotated[str, Field(pattern=r"^[A-Z0-9]{2,30}$", examples=["BTCUSDT"])]

# ---- the gate -----------------------------------------------------------------------------------------


class ServedModelOut(Model):
    """A version the gate has loaded and verified."""

    version: str
    model_type: str
    created_ms: int = Field(description="When the version was trained (registered).")
    loaded_ms: int = Field(description="When the gate loaded it.")
    age_hours: float = Field(
        description="Hours since training; past MODEL_MAX_AGE_HOURS the gate falls back."
    )
    artifact_sha256: str
    feature_spec_hash: str
    horizons_s: list[int]


class InferenceLatency(Model):
    count: int
    p50_ms: float | None = None
    p99_ms: float | None = None


class GateRates(Model):
    """Over the gate's last validations (ML gate window): agreement and the other verdicts among those with
    a model view, fallbacks among all."""

    validations: int
    agreement_rate: float
    disagreement_rate: float
    neutral_rate: float
    fallback_rate: float


class DataWindowOut(Model):
    symbols: list[str]
    start_ms: int
    end_ms: int
    n_train: int
    n_validation: int
    n_test: int


class HorizonMetricsOut(Model):
    """One model's test-fold figures at one horizon; `confusion_matrix` only in a version's detail."""

    horizon_s: int
    n: int | None = Field(None, description="Test samples (absent from versions saved without it).")
    accuracy: float | None = None
    macro_f1: float | None = None
    log_loss: float | None = None
    ece: float | None = None
    confusion_matrix: list[list[int]] | None = Field(
        None, description=f"Counts [true class][predicted class], classes {list(CLASS_NAMES)}."
    )


class ModelSummary(Model):
    """A registered version as the list shows it."""

    version: str
    model_type: str
    status: ModelStatus
    created_ms: int
    feature_spec_hash: str
    definitions_version: int
    horizons_s: list[int]
    parent_version: str | None
    data_window: DataWindowOut
    metrics: list[HorizonMetricsOut] = Field(description="The version's own test-fold figures per horizon.")
    promotion_metric: str
    promotion_value: float | None
    backtest: dict[str, float] = Field(description="The cost-aware backtest of its test fold (bps, counts).")


class LossCurve(Model):
    """The training history of a network (a baseline has none)."""

    epochs: list[int]
    train_loss: list[float | None] = Field(description="Per epoch; null where not finite (diverged).")
    val_loss: list[float | None]
    learning_rate: list[float | None]
    best_epoch: int
    stopped_early: bool


class GateDecisionOut(Model):
    """One decision of the promotion gate about a version (newest first)."""

    id: int
    decided_ms: int
    promoted: bool
    metric: str
    candidate_value: float
    candidate_low: float
    candidate_high: float
    production_version: str | None
    reason: str
    details: dict[str, Any]


class ModelDetail(ModelSummary):
    """A version with everything behind it: the run's other models on the same test fold, the loss curve,
    the confusion matrices (from the run's saved evidence) and the gate's decisions."""

    artifact_sha256: str
    code_version: str
    run_model: str | None = Field(description="Which model of its training run this version is.")
    train_seconds: float | None
    class_names: list[str] = Field(default_factory=lambda: list(CLASS_NAMES))
    baselines: dict[str, list[HorizonMetricsOut]] = Field(
        description="The other models of the run, same test fold, per horizon."
    )
    loss_curve: LossCurve | None
    backtest_summary: dict[str, Any] | None
    evidence_error: str | None = Field(
        None, description="Why the confusion matrices are missing when the saved evidence could not be read."
    )
    gate_decisions: list[GateDecisionOut]


class MLStatus(Model):
    """The gate's state: what serves, why rows fall back, the counters; and the registry's production."""

    production: ServedModelOut | None
    shadow: ServedModelOut | None
    stale: bool
    fallback_reason: FallbackReason | None = Field(
        description="Why every row falls back now (no_model, stale_model); null while a model serves."
    )
    fallback_detail: str | None
    row_predictions: int
    row_fallbacks: dict[str, int]
    verdicts_total: dict[str, int]
    rates: GateRates
    inference: dict[str, InferenceLatency]
    swaps: dict[str, int]
    refused: dict[str, str] = Field(description="Versions the gate refused to load, and why.")
    last_reload_ms: int | None
    registry_production: ModelSummary | None = Field(
        description="The registry's production version (the gate follows it on model_promoted)."
    )


class ProductionModels(Model):
    production: ModelSummary | None = Field(description="The registry's production version.")
    shadow: ModelSummary | None = Field(description="The candidate the gate runs beside it, never traded.")
    serving: str | None = Field(description="The version the gate serves now (null when not trading).")


class ReloadResult(Model):
    trigger: str
    production_before: str | None
    production: str | None
    shadow_before: str | None
    shadow: str | None
    changed: bool
    refused: dict[str, str]


# ---- predictions --------------------------------------------------------------------------------------


class PredictRequest(Model):
    symbol: Symbol


class PredictBatchRequest(Model):
    symbols: list[Symbol] = Field(min_length=1, max_length=100, description="Distinct, of TRADING_PAIRS.")

    @field_validator("symbols")
    @classmethod
    def _distinct(cls, symbols: list[str]) -> list[str]:
        repeated = sorted({s for s in symbols if symbols.count(s) > 1})
        if repeated:
            raise ValueError(f"symbols must be distinct; repeated: {', '.join(repeated)}")
        return symbols


class HorizonPrediction(Model):
    horizon_s: int
    direction: int = Field(description="-1 down, 0 flat, +1 up: the most probable class.")
    p_down: float
    p_flat: float
    p_up: float
    expected_return_bps: float


class PredictionOut(Model):
    """The gate's answer for a symbol's newest live window: the model's view, or why there is none."""

    symbol: str
    ts_ms: int = Field(description="The window's last row (or now, without a window).")
    model_version: str | None
    fallback: FallbackReason | None
    error: str | None
    latency_ms: float
    primary_horizon_s: int | None = None
    direction: int | None = None
    confidence: float | None = None
    horizons: list[HorizonPrediction] = Field(default_factory=list)


class PredictBatchOut(Model):
    predictions: list[PredictionOut]


# ---- drift and retraining -----------------------------------------------------------------------------


class DriftReportOut(Model):
    id: int
    partition_key: str
    symbol: str
    window_start_ms: int
    window_end_ms: int
    production_version: str | None
    severity: DriftSeverity
    feature_drift_score: float
    prediction_psi: float | None
    accuracy_drop: float | None
    drivers: list[str]
    drifted_features: list[str]
    recommendation: str
    html_path: str
    json_path: str
    n_reference: int
    n_current: int
    dagster_run_id: str | None
    created_ms: int


class DriftPoint(Model):
    """One report on the severity chart."""

    id: int
    symbol: str
    window_start_ms: int
    window_end_ms: int
    created_ms: int
    severity: DriftSeverity
    severity_level: int = Field(ge=0, le=3, description="none 0, low 1, medium 2, high 3.")
    feature_drift_score: float
    prediction_psi: float | None
    accuracy_drop: float | None


class DriftHistory(Model):
    symbol: str | None
    since_ms: int
    points: list[DriftPoint] = Field(description="Oldest first, by the end of each report's window.")


class RetrainingRunOut(Model):
    id: int
    dagster_run_id: str
    dagster_run_url: str
    trigger: RetrainingTrigger
    status: RetrainingStatus
    reason: str
    drift_report_ids: list[int]
    candidate_version: str | None
    production_version_before: str | None
    metric: str | None
    candidate_value: float | None
    production_value: float | None
    symbols: list[str]
    window_start_ms: int | None
    window_end_ms: int | None
    created_ms: int
