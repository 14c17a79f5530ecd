"""Dagster and orchestration settings (issue 10; docs/orchestration.md, docs/scaling.md): DagsterConfig and
the models directory. `Settings.orchestration` builds OrchestrationConfig: it also needs the market data
settings."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import field_validator, model_validator

from infra.configs import (
    DagsterConfig,
    DagsterExecutorName,
    PartitionGranularity,
    RetrainSeverity,
    TrainingProfile,
)
from infra.settings_fields.base import RuntimeStateFields, setting


class DagsterFields(RuntimeStateFields):
    """The Dagster instance and UI, partitions, executor, data paths, retraining and its checks."""

    dagster_home: Path | None = setting(
        None, "DAGSTER_HOME", "dagster", "The Dagster instance directory. Unset: $VAR_DIR/dagster."
    )

    dagster_ui_host: str = setting(
        "127.0.0.1", "DAGSTER_UI_HOST", "dagster", "Interface `depthcharge dagster` serves the Dagster UI on."
    )
    dagster_ui_port: int = setting(
        3000, "DAGSTER_UI_PORT", "dagster", "Port of the Dagster UI (0: any free port).", ge=0, le=65535
    )
    dagster_partition: PartitionGranularity = setting(
        "hourly",
        "DAGSTER_PARTITION",
        "dagster",
        "Time partitions of the market-data assets: hourly or daily (each crossed with the TRADING_PAIRS "
        "symbols). Changing it starts a new partition history: materialise again.",
    )
    dagster_partition_start: str = setting(
        "2026-01-01",
        "DAGSTER_PARTITION_START",
        "dagster",
        "First day (YYYY-MM-DD, UTC) of the time partitions.",
    )
    partition_close_grace_s: int = setting(
        120,
        "PARTITION_CLOSE_GRACE_S",
        "dagster",
        "Seconds after a partition's end before it is exported, so the recorder's last batch is stored; "
        "the automation runs that many minutes (rounded up, plus one) after each close.",
        ge=0,
        le=3000,
    )
    dagster_executor: DagsterExecutorName = setting(
        "multiprocess",
        "DAGSTER_EXECUTOR",
        "dagster",
        "How runs execute their steps: multiprocess (a process per step on this machine), celery (on "
        "Celery workers, `depthcharge dagster worker`) or in_process.",
    )
    celery_broker_url: str = setting(
        "redis://127.0.0.1:6379/0",
        "CELERY_BROKER_URL",
        "dagster",
        "Broker of the Celery executor: redis://host:6379/0 or amqp://user:password@host:5672//.",
    )
    celery_result_backend: str | None = setting(
        None,
        "CELERY_RESULT_BACKEND",
        "dagster",
        "Result backend of the Celery executor. Unset: the broker itself for Redis, rpc:// for RabbitMQ.",
    )
    lake_dir: Path | None = setting(
        None, "LAKE_DIR", "dagster", "The Parquet lake the assets write. Unset: $VAR_DIR/lake."
    )
    reports_dir: Path | None = setting(
        None, "REPORTS_DIR", "dagster", "Drift reports and plots (HTML, JSON, PNG). Unset: $VAR_DIR/reports."
    )
    models_root: Path | None = setting(
        None, "MODELS_DIR", "dagster", "The model registry's files. Unset: $VAR_DIR/models."
    )
    training_window_partitions: int = setting(
        24,
        "TRAINING_WINDOW_PARTITIONS",
        "dagster",
        "Time partitions (the newest with labelled features) a retraining reads: 24 hourly = a day.",
        ge=1,
    )
    training_profile: TrainingProfile = setting(
        "quick",
        "TRAINING_PROFILE",
        "dagster",
        "Model size of scheduled and drift retraining: quick (narrow network, CPU-friendly) or full.",
    )
    training_epochs: int = setting(
        12,
        "TRAINING_EPOCHS",
        "dagster",
        "Most epochs of a retraining (early stopping may end it sooner).",
        ge=1,
    )
    retrain_drift_severity: RetrainSeverity = setting(
        "high",
        "RETRAIN_DRIFT_SEVERITY",
        "dagster",
        "A drift report of this severity or worse launches a retraining (low, medium or high).",
    )
    sensor_interval_s: int = setting(
        60,
        "SENSOR_INTERVAL_S",
        "dagster",
        "Least seconds between two evaluations of the drift-retraining and market-automation sensors.",
        ge=5,
        le=3600,
    )
    retrain_schedule_cron: str = setting(
        "30 2 * * *",
        "RETRAIN_SCHEDULE_CRON",
        "dagster",
        "Cron (UTC) of the nightly retraining job.",
    )
    label_coverage_min: float = setting(
        0.9,
        "LABEL_COVERAGE_MIN",
        "dagster",
        "Least share of a partition's raw rows that must carry labels (blocking check).",
        ge=0,
        le=1,
    )
    class_share_min: float = setting(
        0.02,
        "CLASS_SHARE_MIN",
        "dagster",
        "Least share of each direction class at every horizon in a training window (blocking check).",
        ge=0,
        lt=1,
    )
    class_share_max: float = setting(
        0.9,
        "CLASS_SHARE_MAX",
        "dagster",
        "Largest share of any direction class at every horizon in a training window (blocking check).",
        gt=0,
        le=1,
    )
    drift_max_rows: int = setting(
        2000,
        "DRIFT_MAX_ROWS",
        "dagster",
        "Rows sampled from each side of a drift comparison (evidently renders a plot per feature).",
        ge=30,
    )

    @field_validator("dagster_partition_start")
    @classmethod
    def _partition_start_is_a_date(cls, value: str) -> str:
        from datetime import date

        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"DAGSTER_PARTITION_START must be a date YYYY-MM-DD, got {value!r}") from None
        if len(value) != 10:
            raise ValueError(f"DAGSTER_PARTITION_START must be a date YYYY-MM-DD, got {value!r}")
        return value

    @field_validator("retrain_schedule_cron")
    @classmethod
    def _cron_has_five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"RETRAIN_SCHEDULE_CRON must be a 5-field cron expression, got {value!r}")
        return value

    @model_validator(mode="after")
    def _orchestration_consistent(self) -> Self:
        if self.class_share_min >= self.class_share_max:
            raise ValueError(
                f"CLASS_SHARE_MIN ({self.class_share_min}) must be below CLASS_SHARE_MAX ({self.class_share_max})"
            )
        return self

    @property
    def dagster(self) -> DagsterConfig:
        return DagsterConfig(home=self.dagster_home or self.var_dir / "dagster")

    @property
    def models_dir(self) -> Path:
        """Model artifacts and manifests (`<models_dir>/<version>/`): MODELS_DIR, else $VAR_DIR/models."""
        return self.models_root or self.var_dir / "models"
