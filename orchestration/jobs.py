"""Jobs and schedules: the per-partition chain (what the automation sensor runs, also by hand or as a
backfill) and the retraining chain (the nightly schedule and the drift sensor run it)."""

from __future__ import annotations

import dagster as dg

from orchestration.assets.features import labelled_features
from orchestration.assets.market_data import raw_snapshots
from orchestration.assets.monitoring import drift_report
from orchestration.assets.training import model_candidate, model_evaluation, training_dataset
from orchestration.location import LOCATION
from orchestration.retraining import TRIGGER_TAG

PARTITION_ASSETS = dg.AssetSelection.assets(raw_snapshots, labelled_features, drift_report)
RETRAINING_ASSETS = dg.AssetSelection.assets(training_dataset, model_candidate, model_evaluation)

market_partition_job = dg.define_asset_job(
    "market_partition_job",
    selection=PARTITION_ASSETS,
    description="One partition (time window × symbol): export, features and labels, drift report, with checks.",
)

retraining_job = dg.define_asset_job(
    "retraining_job",
    selection=RETRAINING_ASSETS,
    description="Train a candidate on the newest TRAINING_WINDOW_PARTITIONS, evaluate it, promote it if it "
    "passes the gate.",
)

retraining_schedule = dg.ScheduleDefinition(
    name="nightly_retraining",
    job=retraining_job,
    cron_schedule=LOCATION.retrain_schedule_cron,
    execution_timezone="UTC",
    tags={TRIGGER_TAG: "schedule"},
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

market_automation_sensor = dg.AutomationConditionSensorDefinition(
    "market_partitions_automation",
    target=PARTITION_ASSETS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=LOCATION.sensor_interval_s,
    description="Exports each partition as it closes (on_cron), then its features and drift report (eager).",
)
