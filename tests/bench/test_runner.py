"""`python -m bench` end to end on the two cheapest benchmarks at quick sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import runner
from bench.__main__ import main
from bench.report import validate


def test_a_quick_run_writes_figures_with_ratios_and_the_doc(tmp_path: Path) -> None:
    out, doc = tmp_path / "results.json", tmp_path / "benchmarks.md"
    assert main(["--quick", "--only", "features,orderbook", "--out", str(out), "--doc", str(doc)]) == 0
    results = json.loads(out.read_text())
    assert list(results["modules"]) == ["orderbook", "features"]  # MODULES order, not the command's
    figures = validate(results)
    for module in ("orderbook", "features"):
        entry = results["modules"][module]
        assert entry["quick"] is True and "error" not in entry
        assert figures[module] and all(f.ratio > 0 and f.value > 0 for f in figures[module])
    names = [f.figure for f in figures["orderbook"]]
    assert names == ["delta apply, local book", "raw snapshot row build"]
    assert results["modules"]["orderbook"]["details"]["deltas"] == 2_000
    text = doc.read_text()
    assert "## Order book" in text and "## Feature pipeline" in text and "quick sizes" in text

    # A subset run updates its module and keeps the others' results.
    kept = results["modules"]["features"]
    assert main(["--quick", "--only", "orderbook", "--out", str(out), "--doc", str(doc)]) == 0
    again = json.loads(out.read_text())
    assert again["modules"]["features"] == kept
    assert again["modules"]["orderbook"]["measured_ms"] >= results["modules"]["orderbook"]["measured_ms"]


def test_only_names_known_benchmarks() -> None:
    assert runner.parse_only("") == list(runner.MODULES)
    assert runner.parse_only(" features , ingest ") == ["features", "ingest"]
    with pytest.raises(ValueError, match="unknown benchmark\\(s\\) nope: choose among orderbook"):
        runner.parse_only("features,nope")
    with pytest.raises(SystemExit):
        main(["--only", "nope"])


def test_a_module_that_fails_is_recorded_with_its_error_and_the_run_goes_on() -> None:
    entry = runner.run_module("no_such_module", quick=True)  # fails inside the runner, as a crash would
    assert entry["error"].startswith("ValueError: unknown benchmark 'no_such_module': choose among orderbook")
    assert entry["wall_s"] >= 0 and entry["quick"] is True and "figures" not in entry
