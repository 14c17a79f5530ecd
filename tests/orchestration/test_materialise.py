"""The graph as `make demo` materialises it (`orchestration.materialise`, `dg.materialize` against the
Postgres-backed instance): every asset of the recorded partitions, with its checks, and the asset table."""

from __future__ import annotations

import dagster as dg
import pytest

from orchestration.definitions import defs
from orchestration.materialise import ASSET_ORDER, materialise_graph
from tests.orchestration.conftest import HOURS, SYMBOLS, Pipeline


@pytest.mark.slow(seconds=170)  # about a minute: two partitions, a tiny model, two drift reports
def test_the_demo_materialises_every_asset_and_tabulates_them(
    recorded_pipeline: Pipeline, pg_instance: dg.DagsterInstance
) -> None:
    graph = materialise_graph(
        defs, pg_instance, [HOURS[0]], SYMBOLS, candidate={"profile": "tiny", "epochs": 1}
    )
    assert graph.success
    outcomes = graph.outcomes
    assert all(outcomes[name].materialisations for name in ASSET_ORDER), graph.table()
    assert not any(o.failed or o.checks_failed for o in outcomes.values())
    assert outcomes["raw_snapshots"].partitions == {f"{s}|{HOURS[0]}" for s in SYMBOLS}
    assert outcomes["raw_snapshots"].rows == 2 * 2399 and outcomes["raw_snapshots"].checks_passed == 2
    assert outcomes["labelled_features"].checks_passed == 2 * 4
    assert outcomes["training_dataset"].rows == outcomes["labelled_features"].rows
    assert outcomes["model_candidate"].seconds > 0
    # The runs are in the instance's Postgres storage, where the UI reads them.
    assert {r.run_id for r in pg_instance.get_runs()} == {r.run_id for r in graph.runs}

    lines = graph.table().splitlines()
    assert lines[0].split() == ["asset", "partitions", "rows", "status", "seconds"]
    assert [line.split()[0] for line in lines[1:]] == list(ASSET_ORDER)
    raw = lines[1].split()
    assert raw[1:4] == ["2", "4,798", "materialised,"]
    assert "checks 2/2 passed" in lines[1]
    assert "model_version" in graph.metadata["model_evaluation"]
    drift = outcomes["drift_report"]
    assert drift.severities or set(drift.notes) == {"skipped: no production model to compare with"}
