"""The one Dagster `Definitions`: it only wires (no logic, no I/O at import beyond reading the settings that
shape the location, `orchestration.location`). See docs/orchestration.md for the graph."""

from __future__ import annotations

import dagster as dg

from orchestration.assets import features, market_data, monitoring, training
from orchestration.executors import executor_for
from orchestration.jobs import (
    market_automation_sensor,
    market_partition_job,
    retraining_job,
    retraining_schedule,
)
from orchestration.location import LOCATION
from orchestration.maintenance import market_data_retention_job, market_data_retention_schedule
from orchestration.resources import resources_from_env
from orchestration.sensors import drift_retraining_sensor, run_failure_audit

defs = dg.Definitions(
    assets=[
        market_data.raw_snapshots,
        features.labelled_features,
        training.training_dataset,
        training.model_candidate,
        training.model_evaluation,
        monitoring.drift_report,
    ],
    asset_checks=[market_data.raw_rows_in_order, *features.CHECKS, *training.CHECKS],
    jobs=[market_partition_job, retraining_job, market_data_retention_job],
    schedules=[retraining_schedule, market_data_retention_schedule],
    sensors=[market_automation_sensor, drift_retraining_sensor, run_failure_audit],
    resources=resources_from_env(),
    executor=executor_for(LOCATION),
)
