"""The Dagster graph's cost on this machine: HOURS hours × 3 symbols of the synthetic market recorded
offline and stored in an embedded Postgres, then the whole graph materialised in one process
(`orchestration.materialise`, as `make demo` runs it) against a Postgres-backed instance: the seconds of
each asset's steps (its checks not included), per partition and in total, and the projection to a day.

The projection scales the per-partition assets by the partitions of a day (24 hourly × 3 symbols) and the
training assets by the rows of a day's window (their cost is linear in rows at a fixed epoch count; early
stopping only shortens it). One torch and one BLAS thread, as everywhere on this shared machine.

The baseline is the sum of the assets' own step seconds in the same materialisation: the graph's wall
time over it is what Dagster (runs, event storage in Postgres, IO managers) and the asset checks add to
the work itself.

    python -m bench.orchestration --hours 6 [--epochs 12] [--executor in_process|multiprocess|celery]   # BENCH_ORCHESTRATION_HOURS for `make bench`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from threadpoolctl import threadpool_limits

from bench.report import Figure, Section
from depthcharge.commands.dagster import dagster_environment
from depthcharge.commands.record_sim import store
from depthcharge.offline_recording import DEFAULT_START_MS, record_synthetic
from infra.db import migrate
from infra.db.connection import Database
from infra.db.embedded import EmbeddedPostgres
from infra.settings import load_settings

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
HOUR_MS = 3_600_000
DAY_PARTITIONS = 24
PER_PARTITION = ("raw_snapshots", "labelled_features", "drift_report")
TRAINING = ("training_dataset", "model_candidate", "model_evaluation")
EXECUTORS = ("in_process", "multiprocess", "celery")
CELERY_BROKER = "redis://127.0.0.1:6379/14"  # a database of its own, emptied before and after
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}  # step processes


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(
    hours: int | None = None, epochs: int | None = None, executor: str = "in_process", quick: bool = False
) -> dict[str, Any]:
    """``executor``: in_process (`dg.materialize`, as the demo), or multiprocess / celery (the location's
    jobs under that DAGSTER_EXECUTOR; celery with two `depthcharge dagster worker` processes on the
    machine's Redis, database CELERY_DB). ``quick``: one hour, one epoch."""
    if quick:
        hours, epochs = 1, 1
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    hours = hours or int(os.environ.get("BENCH_ORCHESTRATION_HOURS", "1"))
    root = Path(tempfile.mkdtemp(prefix="dc-bench-dagster-"))
    server = EmbeddedPostgres(root / "pg").start()
    try:
        admin = Database(server.uri("postgres"), "embedded", server)
        with admin.connect(autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        db = admin.with_dbname("bench")
        migrate.upgrade(db)
        overrides: dict[str, Any] = {"TRAINING_WINDOW_PARTITIONS": hours}
        if executor != "in_process":
            overrides |= {"DAGSTER_EXECUTOR": executor, "CELERY_BROKER_URL": CELERY_BROKER}
        if epochs is not None:
            overrides["TRAINING_EPOCHS"] = epochs
        settings = load_settings(
            _env_file=None, DATABASE_URL=db.conninfo, VAR_DIR=str(root / "var"), TRADING_PAIRS=",".join(SYMBOLS),
            **overrides,
        )  # fmt: skip
        began = time.perf_counter()
        recording = record_synthetic(
            SYMBOLS, seconds=hours * 3600, seed=7, start_ms=DEFAULT_START_MS, feed=settings.feed
        )
        record_s = time.perf_counter() - began
        asyncio.run(store(db, recording))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            env = {**dagster_environment(settings, db), **ONE_THREAD}
            with _environment(env), threadpool_limits(limits=1), _workers(executor, root):
                result = _materialise(
                    hours, settings.orchestration.training_profile, settings.training_epochs, executor
                )
        finally:
            torch.set_num_threads(threads)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    result["record_s"] = round(record_s, 1)
    _print(result)
    return result


@contextlib.contextmanager
def _workers(executor: str, root: Path) -> Iterator[None]:
    """Two Celery workers for the celery executor, started and stopped here (nothing otherwise)."""
    if executor != "celery":
        yield
        return
    import redis

    redis.Redis.from_url(CELERY_BROKER).flushdb()
    workers = []
    try:
        for name in ("bench1", "bench2"):
            log = root / f"{name}.log"
            with log.open("wb") as out:
                command = [sys.executable, "-m", "depthcharge", "dagster", "worker", "--name", name]
                workers.append((subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT), log))
        for worker, log in workers:
            while b"ready." not in log.read_bytes():
                if worker.poll() is not None:
                    raise RuntimeError(f"a Celery worker exited:\n{log.read_text()[-2000:]}")
                time.sleep(0.5)
        yield
    finally:
        for worker, _ in workers:
            worker.terminate()
        for worker, _ in workers:
            worker.wait(timeout=60)
        redis.Redis.from_url(CELERY_BROKER).flushdb()


def _materialise(hours: int, profile: str, epochs: int, executor: str) -> dict[str, Any]:
    import dagster as dg

    from orchestration.definitions import defs  # after the environment: the location reads it at import
    from orchestration.materialise import materialise_graph
    from orchestration.partitions import TIME_PARTITIONS

    first = TIME_PARTITIONS.get_partition_key_for_timestamp(DEFAULT_START_MS / 1000)
    last = TIME_PARTITIONS.get_partition_key_for_timestamp((DEFAULT_START_MS + (hours - 1) * HOUR_MS) / 1000)
    time_keys = TIME_PARTITIONS.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))
    with dg.DagsterInstance.get() as instance:
        began = time.perf_counter()
        graph = materialise_graph(
            defs,
            instance,
            time_keys,
            SYMBOLS,
            jobs=executor != "in_process",
            before_drift=_promote_if_refused,
        )
        total_s = time.perf_counter() - began
    if not graph.success:
        raise RuntimeError(f"the graph did not materialise:\n{graph.table()}")
    partitions = len(time_keys) * len(SYMBOLS)
    assets = {
        name: {
            "seconds": round(o.seconds, 2),
            "per_partition_s": round(o.seconds / partitions, 2) if name in PER_PARTITION else None,
            "rows": o.rows,
        }
        for name, o in graph.outcomes.items()
    }
    day_scale = DAY_PARTITIONS / hours
    projected = sum(
        o.seconds * day_scale
        for name, o in graph.outcomes.items()
        if name in PER_PARTITION or name in TRAINING
    )
    return {
        "hours": hours,
        "symbols": list(SYMBOLS),
        "partitions": partitions,
        "training_profile": profile,
        "epochs": epochs,
        "executor": executor,
        "total_s": round(total_s, 1),
        "steps_s": round(sum(o.seconds for o in graph.outcomes.values()), 1),
        "assets": assets,
        "projected_day_s": round(projected, 1),
        "table": graph.table(),
    }


def _promote_if_refused(graph: Any) -> None:
    """Drift is judged against the production model: promote the run's candidate by hand when the gate
    kept it (a short recording rarely earns it), as an operator may, so that the drift stage is timed."""
    from infra.db.connection import normalise_url
    from ml.registry import ModelRegistry

    if graph.metadata["model_evaluation"].get("promoted"):
        return
    db = Database(normalise_url(os.environ["DATABASE_URL"]), "DATABASE_URL")
    registry = ModelRegistry(db, root=Path(os.environ["MODELS_DIR"]))
    registry.promote(
        str(graph.metadata["model_candidate"]["model_version"]), metric="macro_f1_10s", higher_is_better=True
    )


def _print(result: dict[str, Any]) -> None:
    print(
        f"Dagster graph, {result['hours']} h x {len(result['symbols'])} symbols ({result['partitions']} partitions, "
        f"{result['training_profile']} model, {result['epochs']} epochs at most), executor {result['executor']}:"
    )
    print(result["table"])
    print(
        f"  recording {result['record_s']} s; graph {result['total_s']} s wall (steps + checks + Dagster); "
        f"a day (24 h x 3 symbols) projected at {result['projected_day_s']} s of steps"
    )


def section(result: Mapping[str, Any]) -> Section:
    steps = ", ".join(f"{name} {a['seconds']} s" for name, a in result["assets"].items())
    return Section(
        title="Dagster graph",
        summary=(
            f"The whole asset graph materialised in one process over {result['hours']} h × "
            f"{len(result['symbols'])} symbols of the synthetic market ({result['partitions']} partitions, "
            f"{result['training_profile']} model, {result['epochs']} epochs at most), against the seconds "
            "of its assets' own steps"
        ),
        figures=[
            Figure("graph materialisation, wall (steps, checks, Dagster)", result["total_s"], "s",
                   "sum of the assets' step seconds", result["steps_s"]),
        ],
        notes=[
            f"Steps: {steps}.",
            f"Projected to a day (24 hourly partitions × 3 symbols, training scaled by rows): "
            f"{result['projected_day_s']} s of steps, {result['projected_day_s'] / 86_400:.1%} of the day.",
        ],
        details={k: v for k, v in result.items() if k != "table"},
    )  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--executor", choices=EXECUTORS, default="in_process")
    args = parser.parse_args()
    run(args.hours, args.epochs, args.executor)
