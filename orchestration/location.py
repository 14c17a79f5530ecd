"""The code location's edge: the settings that shape the definitions themselves, read once when Dagster
loads the location.

Partitions (DAGSTER_PARTITION, DAGSTER_PARTITION_START, TRADING_PAIRS), the executor (DAGSTER_EXECUTOR)
and the retraining schedule (RETRAIN_SCHEDULE_CRON) must be known when the definitions are built, so they
come from `infra.settings` here, like any other entry point of the project. Everything a step needs while
it runs reaches it through the resources, which read `dg.EnvVar`s (`orchestration/resources.py`), the
variables `depthcharge dagster` sets from the same settings.
"""

from __future__ import annotations

from infra.settings import OrchestrationConfig, load_settings

LOCATION: OrchestrationConfig = load_settings().orchestration
