"""The one Dagster `Definitions`: it only wires (STYLE.md §1). Assets arrive with the orchestration issue."""

from __future__ import annotations

import dagster as dg

from orchestration.maintenance import market_data_retention_job, market_data_retention_schedule
from orchestration.resources import DatabaseResource

defs = dg.Definitions(
    jobs=[market_data_retention_job],
    schedules=[market_data_retention_schedule],
    resources={"database": DatabaseResource()},
)
