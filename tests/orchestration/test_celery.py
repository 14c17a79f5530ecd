"""Scale-out on Celery (docs/scaling.md): `retraining_job`, started with DAGSTER_EXECUTOR=celery through
`depthcharge dagster job execute`, runs every step on two `depthcharge dagster worker` processes over the
machine's real Redis broker; the run's event log in the Postgres-backed instance shows each step in a
worker's process, none in the run's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psutil
import pytest
import redis

from ml.registry import ModelRegistry
from orchestration.definitions import defs
from tests.orchestration.conftest import HOURS, SYMBOLS, Pipeline, key

# A database of its own on the machine's Redis, emptied before and after: no other user's queue is touched.
BROKER = "redis://127.0.0.1:6379/13"
DEPTHCHARGE = [sys.executable, "-m", "depthcharge"]
FEATURES = [dg.AssetKey("raw_snapshots"), dg.AssetKey("labelled_features")]
RUN_CONFIG = {
    "ops": {
        "training_dataset": {"config": {"end_partition": HOURS[0], "partitions": 1}},
        "model_candidate": {"config": {"profile": "tiny", "epochs": 2}},
    }
}


@pytest.fixture
def broker() -> Iterator[str]:
    client = redis.Redis.from_url(BROKER, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"the machine's Redis at {BROKER} is not reachable: {exc}")
    client.flushdb()
    yield BROKER
    client.flushdb()
    client.close()


def celery_env(broker: str) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_EXECUTOR": "celery",
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": broker,
    }


def process_tree(pid: int) -> set[int]:
    root = psutil.Process(pid)
    return {pid, *(p.pid for p in root.children(recursive=True))}


def wait_for_pool(worker: subprocess.Popen[bytes], log: Path, timeout_s: float = 180.0) -> None:
    """Until celery says the worker is ready (its pool process exists from then on)."""
    deadline = time.monotonic() + timeout_s
    while b"ready." not in log.read_bytes():
        if worker.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"worker did not start (status {worker.poll()}):\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


@pytest.mark.slow(
    seconds=240
)  # one to three minutes: two workers import the location, a tiny training runs on one
@pytest.mark.timeout(600)
def test_the_training_job_runs_its_steps_on_two_celery_workers(
    recorded_pipeline: Pipeline, pg_instance: dg.DagsterInstance, broker: str, tmp_path: Path
) -> None:
    partition_job = defs.resolve_job_def("market_partition_job")
    for symbol in SYMBOLS:
        assert partition_job.execute_in_process(
            partition_key=key(HOURS[0], symbol), instance=pg_instance, asset_selection=FEATURES
        ).success

    env = celery_env(broker)
    workers: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: tmp_path / f"{name}.log" for name in ("w1", "w2")}
    trees: dict[str, set[int]] = {}
    try:
        for name, log in logs.items():
            with log.open("wb") as out:
                workers[name] = subprocess.Popen(
                    [*DEPTHCHARGE, "dagster", "worker", "--name", name],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        for name, worker in workers.items():
            wait_for_pool(worker, logs[name])
            trees[name] = process_tree(worker.pid)

        config = tmp_path / "run.yaml"
        config.write_text(json.dumps(RUN_CONFIG))  # JSON is YAML
        command = [*DEPTHCHARGE, "dagster", "job", "execute", "-m", "orchestration.definitions"]
        execute = subprocess.run(
            [*command, "-j", "retraining_job", "-c", str(config)],
            env=env,
            capture_output=True,
            timeout=480,
            check=False,
        )
        assert execute.returncode == 0, execute.stderr.decode()[-4000:]
        for name, worker in workers.items():  # the pool may have replaced a process meanwhile
            trees[name] |= process_tree(worker.pid)
    finally:
        for worker in workers.values():
            worker.terminate()
        for worker in workers.values():
            worker.wait(timeout=60)

    [run] = pg_instance.get_runs(filters=dg.RunsFilter(job_name="retraining_job"))
    assert run.status is dg.DagsterRunStatus.SUCCESS
    entries = [r.event_log_entry for r in pg_instance.get_records_for_run(run.run_id, limit=10_000).records]
    events = [e.dagster_event for e in entries if e.dagster_event is not None]
    [run_pid] = {e.pid for e in events if e.event_type is dg.DagsterEventType.RUN_START}
    step_pids = {e.step_key: e.pid for e in events if e.event_type is dg.DagsterEventType.STEP_START}
    assert set(step_pids) == {
        "training_dataset",
        "training_dataset_class_balance",
        "training_dataset_training_window_clean",
        "model_candidate",
        "model_evaluation",
    }
    worker_of = {pid: name for name, tree in trees.items() for pid in tree}
    assert run_pid not in worker_of and run_pid not in step_pids.values()
    unplaced = {step: pid for step, pid in step_pids.items() if pid not in worker_of}
    assert not unplaced, f"steps outside the workers' processes {trees}: {unplaced}"
    # dagster-celery's own account agrees: each step was delegated to the worker whose process ran it.
    delegated = {
        e.step_key: str(e.engine_event_data.metadata["Celery worker"].value).split("@")[0]
        for e in events
        if e.event_type is dg.DagsterEventType.ENGINE_EVENT
        and e.step_key
        and "Celery worker" in e.engine_event_data.metadata
    }
    assert delegated == {step: worker_of[pid] for step, pid in step_pids.items()}

    materialised = [e.asset_key for e in events if e.event_type is dg.DagsterEventType.ASSET_MATERIALIZATION]
    assert {k.to_user_string() for k in materialised if k is not None} == {
        "training_dataset",
        "model_candidate",
        "model_evaluation",
    }
    registry = ModelRegistry(recorded_pipeline.db, root=recorded_pipeline.models)
    assert registry.list(), "the candidate trained on a worker was not registered"
    print(delegated)
