"""The one Dagster `Definitions`: it only wires (no logic, no I/O at import). Assets arrive with the orchestration issue."""

from __future__ import annotations

import dagster as dg

from orchestration.maintenance import market_data_retention_job, market_data_retention_schedule
from orchestration.resources import database_resource_from_env

defs = dg.Definitions(
    jobs=[market_data_retention_job],
    schedules=[market_data_retention_schedule],
    resources={"database": database_resource_from_env()},
)
