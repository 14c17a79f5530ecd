"""The one shape every benchmark reports in, and docs/benchmarks.md generated from bench/results.json.

A benchmark module's `section(result)` turns its raw measurements into a `Section`: a title, a one-line
explanation, and `Figure`s. A figure is one measured value with its unit beside a baseline measured in
the same run, in the same unit, and their ratio (value ÷ baseline value): the ratio is what carries from
one machine to another, the absolute values move with the machine and its load.

    python -m bench.report [--results bench/results.json] [--doc docs/benchmarks.md]   # regenerate the doc
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"
FIGURE_KEYS = ("figure", "value", "unit", "baseline", "baseline_value", "ratio")


class ReportError(ValueError):
    """A result that does not have the uniform shape; the message names the module and the figure."""


def _number(where: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ReportError(f"{where}: {name} must be a finite number, got {value!r}")
    return float(value)


def _significant(x: float, digits: int = 4) -> float:
    return 0.0 if x == 0 else round(x, digits - 1 - math.floor(math.log10(abs(x))))


@dataclass(frozen=True)
class Figure:
    """One measured value beside its baseline; `ratio` = value ÷ baseline_value, both in `unit`."""

    figure: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    ratio: float = field(init=False)

    def __post_init__(self) -> None:
        where = f"figure {self.figure!r}"
        if not isinstance(self.figure, str) or not self.figure.strip():
            raise ReportError(f"a figure needs a name, got {self.figure!r}")
        for name in ("unit", "baseline"):
            text = getattr(self, name)
            if not isinstance(text, str) or not text.strip():
                raise ReportError(f"{where}: {name} must be a non-empty string, got {text!r}")
        value = _number(where, "value", self.value)
        base = _number(where, "baseline_value", self.baseline_value)
        if base <= 0:
            raise ReportError(f"{where}: baseline_value must be > 0 to give a ratio, got {base!r}")
        object.__setattr__(self, "ratio", _significant(value / base))

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in FIGURE_KEYS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], module: str = "?") -> Figure:
        """Validate a stored figure: every key present, the ratio the one its values give."""
        name = data.get("figure", "?") if isinstance(data, Mapping) else "?"
        where = f"module {module!r}, figure {name!r}"
        if not isinstance(data, Mapping):
            raise ReportError(f"module {module!r}: a figure must be an object, got {data!r}")
        missing = [key for key in FIGURE_KEYS if data.get(key) is None]
        if missing:
            raise ReportError(f"{where}: missing {', '.join(missing)}")
        try:
            figure = cls(
                data["figure"], data["value"], data["unit"], data["baseline"], data["baseline_value"]
            )
        except ReportError as exc:
            raise ReportError(f"module {module!r}: {exc}") from None
        stored = _number(where, "ratio", data["ratio"])
        if not math.isclose(stored, figure.ratio, rel_tol=1e-3):
            raise ReportError(f"{where}: ratio {stored} is not value/baseline_value = {figure.ratio}")
        return figure


@dataclass(frozen=True)
class Section:
    """A module's figures for the report, with its raw measurements (`details`) kept beside them."""

    title: str
    summary: str
    figures: Sequence[Figure]
    notes: Sequence[str] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [f.figure for f in self.figures]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ReportError(f"section {self.title!r}: figures named twice: {', '.join(duplicates)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "summary": self.summary,
            "figures": [f.to_dict() for f in self.figures],
            "notes": list(self.notes),
            "details": dict(self.details),
        }


def validate(results: Mapping[str, Any]) -> dict[str, list[Figure]]:
    """Check results.json's shape; the figures of every module that ran (failed modules carry `error`)."""
    for key in ("machine", "modules"):
        if not isinstance(results.get(key), Mapping):
            raise ReportError(f"results: {key!r} must be an object")
    out: dict[str, list[Figure]] = {}
    for module, entry in results["modules"].items():
        if not isinstance(entry, Mapping):
            raise ReportError(f"module {module!r}: must be an object, got {entry!r}")
        if entry.get("error"):
            out[module] = []
            continue
        for key in ("title", "summary"):
            if not isinstance(entry.get(key), str):
                raise ReportError(f"module {module!r}: {key!r} must be a string")
        figures = entry.get("figures")
        if not isinstance(figures, list) or not figures:
            raise ReportError(f"module {module!r}: needs a non-empty list of figures")
        out[module] = [Figure.from_dict(f, module) for f in figures]
    return out


def _fmt(x: float) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{_significant(x):g}" if x else "0"


def _when(ms: object) -> str:
    if not isinstance(ms, int):
        return "?"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


INTRO = """\
# Benchmarks

<!-- Generated by `python -m bench.report` from bench/results.json: edit bench/report.py or the
benchmark modules, not this file. -->

`make bench` runs the benchmarks in `bench/` one after another, writes every measurement to
`bench/results.json` (git-ignored) and regenerates this page from it. A benchmark measures; it never
asserts a time. The machines this runs on are small and shared (two cores, other work beside ours), so
absolute timings move from run to run by tens of percent. Each figure is therefore measured beside a
**baseline**, the same or comparable work done another way (the naive implementation, a pandas or
plain-Python reference, the bare call without our layer, a cheaper model) in the same process and the
same minutes, and reported with the **ratio** value ÷ baseline value, both in the figure's unit.
Whether lower or higher is better follows from the unit: a time per item wants a ratio below 1, a rate
(rows/s, × real time) a ratio above 1. Where a figure also has a fixed target (the 10 ms inference
budget, the 1 s snapshot interval), the notes under its table compare it with that target.

Rerun everything with `make bench` (about a quarter of an hour here; the Dagster benchmark records
`BENCH_ORCHESTRATION_HOURS` hours, default 1). A subset with `make bench BENCH_ONLY=features,orderbook`
(or `python -m bench --only features,orderbook`) updates those modules in results.json and keeps the
others. `python -m bench --quick` runs small sizes to check the plumbing and prints the tables without
writing anything; `python -m bench.report` regenerates this page from an existing results.json. The
manipulation detectors' precision and recall (`python -m bench.detection`, minutes per seed) are measured
apart, see [detection.md](detection.md).
"""


def _machine(machine: Mapping[str, Any]) -> list[str]:
    libraries = machine.get("libraries") or {}
    commit = machine.get("commit") or "unknown"
    if machine.get("uncommitted_changes"):
        commit += " (with uncommitted changes)"
    rows = [
        ("CPU", machine.get("cpu")),
        ("cores", f"{machine.get('cores')} ({machine.get('cores_available')} available to the process)"),
        ("RAM", f"{machine.get('ram_gb')} GB"),
        ("OS", machine.get("os")),
        ("Python", machine.get("python")),
        ("libraries", ", ".join(f"{k} {v}" for k, v in libraries.items())),
        ("commit", commit),
    ]
    return ["## Machine", "", "| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows), ""]


def _section(module: str, entry: Mapping[str, Any], figures: list[Figure]) -> list[str]:
    when = f"`bench/{module}.py`, measured {_when(entry.get('measured_ms'))}"
    if entry.get("wall_s") is not None:
        when += f" in {entry['wall_s']} s"
    if entry.get("commit"):
        when += f" at {entry['commit']}"
    if entry.get("quick"):
        when += "; quick sizes, not representative"
    lines = [f"## {entry.get('title') or module}", "", f"_{when}._", ""]
    if entry.get("error"):
        return [*lines, f"**Failed:** {entry['error']}", ""]
    lines += [f"{entry['summary']}.", ""]
    lines += [
        "| figure | value | unit | baseline | baseline value | ratio |",
        "| --- | ---: | --- | --- | ---: | ---: |",
    ]
    for f in figures:
        lines.append(
            f"| {f.figure} | {_fmt(f.value)} | {f.unit} | {f.baseline} | {_fmt(f.baseline_value)} | {_fmt(f.ratio)} |"
        )
    notes = entry.get("notes") or []
    return [*lines, "", *(f"* {note}" for note in notes), *([""] if notes else [])]


def render(results: Mapping[str, Any]) -> str:
    """docs/benchmarks.md from a results dict (raises ReportError when its shape is wrong)."""
    figures = validate(results)
    lines = [INTRO, *_machine(results["machine"])]
    for module, entry in results["modules"].items():
        lines += _section(module, entry, figures[module])
    return "\n".join(lines).rstrip() + "\n"


def write(results: Mapping[str, Any], results_path: Path = RESULTS, doc_path: Path | None = DOC) -> None:
    """Validate, then write results.json and (unless `doc_path` is None) the markdown generated from it."""
    text = render(results)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {results_path}")
    if doc_path is not None:
        doc_path.write_text(text)
        print(f"wrote {doc_path}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate docs/benchmarks.md from bench/results.json.")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    if not args.results.is_file():
        raise SystemExit(f"{args.results}: no results to report (run `make bench` first)")
    try:
        results = json.loads(args.results.read_text())
        args.doc.write_text(render(results))
    except (json.JSONDecodeError, ReportError) as exc:
        raise SystemExit(f"{args.results}: {exc}") from None
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
