"""The uniform shape of benchmark figures and the markdown generated from results.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import machine
from bench.report import Figure, ReportError, Section, main, render, validate


def _results(*figures: dict[str, Any], error: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"measured_ms": 1_767_225_600_000, "wall_s": 1.5, "quick": False, "commit": "abc"}
    if error:
        entry["error"] = error
    else:
        entry |= {"title": "Order book", "summary": "Deltas applied", "figures": list(figures), "notes": []}
    return {"format": 1, "machine": machine.describe(), "modules": {"orderbook": entry}}


def _figure(**changes: Any) -> dict[str, Any]:
    return Figure("delta apply", 2.5, "µs/message", "dict re-sorted", 10.0).to_dict() | changes


def test_a_figure_carries_its_ratio_to_the_baseline() -> None:
    figure = Figure("batch", 5_000.0, "rows/s", "pandas per row", 62.5)
    assert figure.ratio == 80.0
    assert figure.to_dict() == {
        "figure": "batch", "value": 5_000.0, "unit": "rows/s", "baseline": "pandas per row",
        "baseline_value": 62.5, "ratio": 80.0,
    }  # fmt: skip
    assert Figure("t", 1.0, "ms", "b", 3.0).ratio == 0.3333  # four significant digits


def test_the_report_renders_one_table_per_module_with_the_machine() -> None:
    section = Section(
        "Order book", "Deltas applied", [Figure("delta apply", 2.5, "µs/message", "dict", 10.0)]
    )
    results = _results(*section.to_dict()["figures"])
    results["modules"]["orderbook"]["notes"] = ["a note under the table"]
    text = render(results)
    assert "## Machine" in text and f"| CPU | {results['machine']['cpu']} |" in text
    assert "## Order book" in text and "Deltas applied." in text
    assert "| figure | value | unit | baseline | baseline value | ratio |" in text
    assert "| delta apply | 2.5 | µs/message | dict | 10 | 0.25 |" in text
    assert "* a note under the table" in text
    assert "`bench/orderbook.py`, measured 2026-01-01 00:00 UTC in 1.5 s at abc" in text


def test_large_values_are_grouped_and_small_ones_keep_four_digits() -> None:
    text = render(_results(_figure(value=123_456.7, baseline_value=0.012345, ratio=123_456.7 / 0.012345)))
    # the ratio to four significant digits, like every number of the table
    assert "| 123,457 | µs/message | dict re-sorted | 0.01235 | 10,000,000 |" in text


def test_a_figure_without_its_baseline_is_refused_by_name() -> None:
    figure = _figure()
    del figure["baseline_value"]
    with pytest.raises(
        ReportError, match=r"module 'orderbook', figure 'delta apply': missing baseline_value"
    ):
        render(_results(figure))
    with pytest.raises(ReportError, match=r"figure 'delta apply': missing baseline, ratio"):
        Figure.from_dict(_figure(baseline=None, ratio=None), "orderbook")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"baseline_value": 0}, r"figure 'delta apply': baseline_value must be > 0"),
        ({"value": "fast"}, r"figure 'delta apply': value must be a finite number, got 'fast'"),
        ({"value": float("nan")}, r"figure 'delta apply': value must be a finite number"),
        ({"unit": " "}, r"figure 'delta apply': unit must be a non-empty string"),
        ({"ratio": 4.0}, r"figure 'delta apply': ratio 4.0 is not value/baseline_value = 0.25"),
    ],
)
def test_a_malformed_figure_is_refused_with_what_is_wrong(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ReportError, match=message):
        validate(_results(_figure(**changes)))


def test_a_module_needs_figures_and_a_failed_one_reports_its_error() -> None:
    with pytest.raises(ReportError, match="module 'orderbook': needs a non-empty list of figures"):
        validate(_results())
    with pytest.raises(ReportError, match="section 'S': figures named twice: a"):
        Section("S", "s", [Figure("a", 1, "ms", "b", 1), Figure("a", 2, "ms", "b", 1)])
    text = render(_results(error="RuntimeError: the server did not start"))
    assert "**Failed:** RuntimeError: the server did not start" in text


def test_the_doc_is_regenerated_from_a_results_file(tmp_path: Path) -> None:
    results, doc = tmp_path / "results.json", tmp_path / "benchmarks.md"
    results.write_text(json.dumps(_results(_figure())))
    main(["--results", str(results), "--doc", str(doc)])
    assert "| delta apply | 2.5 | µs/message | dict re-sorted | 10 | 0.25 |" in doc.read_text()

    results.write_text(json.dumps(_results(_figure(baseline_value=None))))
    with pytest.raises(SystemExit, match="figure 'delta apply': missing baseline_value"):
        main(["--results", str(results), "--doc", str(doc)])
    with pytest.raises(SystemExit, match="no results to report"):
        main(["--results", str(tmp_path / "absent.json"), "--doc", str(doc)])


def test_the_machine_block_names_what_the_figures_ran_on() -> None:
    described = machine.describe()
    assert described["cpu"] and described["cores"] >= 1 and described["ram_gb"] > 0
    assert set(described["libraries"]) == {
        "torch",
        "numpy",
        "pandas",
        "pyarrow",
        "scikit-learn",
        "dagster",
        "psycopg",
    }
    assert described["libraries"]["numpy"][0].isdigit()
    assert described["python"].startswith("3.11")
