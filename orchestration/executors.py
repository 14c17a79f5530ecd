"""The executor of every job, chosen by DAGSTER_EXECUTOR when the location loads (docs/scaling.md).

* ``multiprocess`` (default): a process per step on the machine that runs the run;
* ``celery``: every step is a task on the Celery broker CELERY_BROKER_URL, executed by whichever
  `depthcharge dagster worker` takes it (on this machine or others that share the database and the lake);
  the broker and result backend are read from the environment when a run starts;
* ``in_process``: every step in the run's own process (debugging).
"""

from __future__ import annotations

import dagster as dg

from infra.settings import OrchestrationConfig


def executor_for(config: OrchestrationConfig) -> dg.ExecutorDefinition:
    """The executor definition DAGSTER_EXECUTOR names."""
    if config.executor == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(
            {"broker": {"env": "CELERY_BROKER_URL"}, "backend": {"env": "CELERY_RESULT_BACKEND"}},
            name="celery",
        )
    if config.executor == "in_process":
        return dg.in_process_executor
    return dg.multiprocess_executor
