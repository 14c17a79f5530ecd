"""The whole graph for a set of recorded partitions, materialised in one process with `dg.materialize`
against a given instance, and what each asset did: how `make demo` runs its ML stage and what
bench/orchestration.py times.

The stages run in the order the automation would run them: each partition's export and features (with
their checks), then one retraining over all of them, then each partition's drift report against the model
now in production. A stage that fails ends the sequence (what follows would read its missing output).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.execution_result import ExecutionResult

from orchestration.partitions import MARKET_PARTITIONS, SYMBOL, TIME

LOCATION_MODULE = "orchestration.definitions"

PARTITION_ASSETS = ("raw_snapshots", "labelled_features")
TRAINING_ASSETS = ("training_dataset", "model_candidate", "model_evaluation")
DRIFT_ASSETS = ("drift_report",)
ASSET_ORDER = (*PARTITION_ASSETS, *TRAINING_ASSETS, *DRIFT_ASSETS)


@dataclass
class AssetOutcome:
    """One asset over every run of the sequence."""

    asset: str
    partitions: set[str] = field(default_factory=set)
    materialisations: int = 0
    rows: int | None = None
    checks_passed: int = 0
    checks_failed: int = 0
    failed: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    severities: Counter[str] = field(default_factory=Counter)

    @property
    def status(self) -> str:
        if self.failed:
            state = "FAILED"
        elif self.materialisations:
            state = "materialised"
        else:
            state = "not run"
        checks = self.checks_passed + self.checks_failed
        if checks:
            state += f", checks {self.checks_passed}/{checks} passed"
        if self.severities:
            state += "; drift " + ", ".join(f"{s} ×{n}" for s, n in sorted(self.severities.items()))
        return state + "".join(f"; {n}" for n in sorted(set(self.notes)))


@dataclass
class GraphRun:
    """The results of the sequence, per asset, plus the metadata of the training stage's assets."""

    outcomes: dict[str, AssetOutcome]
    runs: list[ExecutionResult]
    metadata: dict[str, dict[str, Any]]

    @property
    def success(self) -> bool:
        return all(r.success for r in self.runs)

    def table(self) -> str:
        """asset | partitions | rows | status | seconds, as aligned text."""
        rows = [("asset", "partitions", "rows", "status", "seconds")]
        for name in ASSET_ORDER:
            o = self.outcomes[name]
            rows.append(
                (
                    name,
                    str(len(o.partitions)) if o.partitions else "-",
                    "-" if o.rows is None else f"{o.rows:,}",
                    o.status,
                    f"{o.seconds:.1f}",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Seconds from STEP_START to the step's end, per step key, from the run's event log."""
    started: dict[str, float] = {}
    seconds: dict[str, float] = defaultdict(float)
    ends = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    for record in instance.get_records_for_run(run_id, limit=100_000).records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type is dg.DagsterEventType.STEP_START:
            started[event.step_key] = entry.timestamp
        elif event.event_type in ends and event.step_key in started:
            seconds[event.step_key] += entry.timestamp - started.pop(event.step_key)
    return seconds


def _account(
    outcomes: dict[str, AssetOutcome], result: ExecutionResult, instance: dg.DagsterInstance
) -> None:
    for event in result.get_asset_materialization_events():
        materialisation = event.materialization
        outcome = outcomes[materialisation.asset_key.to_user_string()]
        outcome.materialisations += 1
        if materialisation.partition:
            outcome.partitions.add(materialisation.partition)
        count = materialisation.metadata.get("dagster/row_count")
        if count is not None:
            outcome.rows = (outcome.rows or 0) + int(count.value)  # type: ignore[arg-type]
        skipped = materialisation.metadata.get("skipped")
        if skipped is not None:
            outcome.notes.append(f"skipped: {skipped.value}")
        severity = materialisation.metadata.get("severity")
        if severity is not None and skipped is None:
            outcome.severities[str(severity.value)] += 1
    for check in result.get_asset_check_evaluations():
        outcome = outcomes[check.asset_key.to_user_string()]
        if check.passed:
            outcome.checks_passed += 1
        else:
            outcome.checks_failed += 1
    for event in result.all_events:
        if event.event_type is dg.DagsterEventType.STEP_FAILURE and event.step_key in outcomes:
            outcomes[event.step_key].failed = True
    for step, seconds in _step_seconds(instance, result.run_id).items():
        if step in outcomes:
            outcomes[step].seconds += seconds


class _Sequence:
    """Runs of the location's assets against one instance, accounted into one GraphRun."""

    def __init__(
        self, defs: dg.Definitions, instance: dg.DagsterInstance, log_level: str, jobs: bool
    ) -> None:
        self.assets: list[Any] = [*(defs.assets or []), *(defs.asset_checks or [])]
        self.resources = dict(defs.resources or {})
        self.instance = instance
        self.loggers = {"loggers": {"console": {"config": {"log_level": log_level}}}}
        self.repository = None if not jobs else ReconstructableRepository.for_module(LOCATION_MODULE, "defs")
        self.graph = GraphRun({name: AssetOutcome(name) for name in ASSET_ORDER}, [], {})

    def _launch(
        self, selection: Sequence[str], run_config: dict[str, Any], partition_key: dg.MultiPartitionKey | None
    ) -> ExecutionResult:
        config = {**self.loggers, **run_config}
        if self.repository is None:
            return dg.materialize(
                self.assets,
                selection=list(selection),
                instance=self.instance,
                resources=self.resources,
                raise_on_error=False,
                run_config=config,
                partition_key=partition_key,
            )
        job = "retraining_job" if partition_key is None else "market_partition_job"
        tags = {} if partition_key is None else MARKET_PARTITIONS.get_tags_for_partition_key(partition_key)
        return dg.execute_job(
            self.repository.get_reconstructable_job(job),
            self.instance,
            run_config=config,
            tags=tags,
            asset_selection=[dg.AssetKey(name) for name in selection],
        )

    def run(
        self,
        selection: Sequence[str],
        run_config: dict[str, Any] | None = None,
        partition_key: dg.MultiPartitionKey | None = None,
    ) -> bool:
        result = self._launch(selection, run_config or {}, partition_key)
        self.graph.runs.append(result)
        _account(self.graph.outcomes, result, self.instance)
        for event in result.get_asset_materialization_events():
            key = event.materialization.asset_key.to_user_string()
            self.graph.metadata[key] = {k: v.value for k, v in event.materialization.metadata.items()}
        return result.success


def _keys(time_keys: Sequence[str], symbols: Sequence[str]) -> list[dg.MultiPartitionKey]:
    if not time_keys or not symbols:
        raise ValueError("name at least one time partition and one symbol to materialise")
    return [dg.MultiPartitionKey({TIME: t, SYMBOL: s}) for t in time_keys for s in symbols]


def materialise_graph(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    time_keys: Sequence[str],
    symbols: Sequence[str],
    *,
    candidate: dict[str, Any] | None = None,
    log_level: str = "WARNING",
    jobs: bool = False,
    before_drift: Callable[[GraphRun], None] | None = None,
) -> GraphRun:
    """Materialise every asset of ``defs`` for the time partitions ``time_keys`` × ``symbols``, train once
    on all of them (``candidate``: the model_candidate op config, e.g. ``{"profile": "tiny"}``) and judge
    each partition's drift against the resulting production model. ``log_level`` is the console's (the
    event log in the instance keeps everything). ``jobs``: launch the location's jobs
    (`market_partition_job`, `retraining_job`) reconstructed from their module, so that their executor
    (DAGSTER_EXECUTOR: multiprocess or celery) runs the steps, instead of materialising in this process.
    ``before_drift`` is called between the training and the
    drift stage (a benchmark promotes a refused candidate there, so that drift has a model to judge by)."""
    keys = _keys(time_keys, symbols)
    sequence = _Sequence(defs, instance, log_level, jobs)
    if not all([sequence.run(PARTITION_ASSETS, partition_key=k) for k in keys]):
        return sequence.graph
    window = {"partitions": len(time_keys), "end_partition": time_keys[-1], "symbols": list(symbols)}
    ops: dict[str, Any] = {"training_dataset": {"config": window}}
    if candidate:
        ops["model_candidate"] = {"config": candidate}
    if not sequence.run(TRAINING_ASSETS, run_config={"ops": ops}):
        return sequence.graph
    if before_drift is not None:
        before_drift(sequence.graph)
    for k in keys:
        sequence.run(DRIFT_ASSETS, partition_key=k)
    return sequence.graph


def materialise_partitions(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    time_keys: Sequence[str],
    symbols: Sequence[str],
    *,
    log_level: str = "WARNING",
    jobs: bool = False,
    on_partition: Callable[[dg.MultiPartitionKey], None] | None = None,
) -> GraphRun:
    """What the automation does for newly closed partitions: one run per partition of its export, features
    and drift report against the model in production, no retraining (the drift sensor decides that).
    ``jobs`` as for :func:`materialise_graph`; ``on_partition`` is called after each partition (a progress
    bar)."""
    sequence = _Sequence(defs, instance, log_level, jobs)
    for k in _keys(time_keys, symbols):
        sequence.run((*PARTITION_ASSETS, *DRIFT_ASSETS), partition_key=k)
        if on_partition is not None:
            on_partition(k)
    return sequence.graph
