"""Runs benchmark modules and collects their sections into the results dict of results.json.

Every module in MODULES has `run(quick: bool = False) -> dict` (its raw measurements; `quick` picks sizes
small enough for a test) and `section(result) -> Section` (those measurements as figures with baselines).
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, cast

from bench import machine
from bench.report import Section, validate
from schemas.times import now_ms

# In the order `make bench` runs them: the cheap, CPU-only ones first.
MODULES = (
    "orderbook",
    "features",
    "inference",
    "ingest",
    "execution",
    "market",
    "training",
    "decisions",
    "orchestration",
)
FORMAT = 1


class Benchmark(Protocol):
    def run(self, quick: bool = False) -> dict[str, Any]: ...

    def section(self, result: Mapping[str, Any]) -> Section: ...


def parse_only(text: str | None) -> list[str]:
    """`--only` / BENCH_ONLY: comma-separated module names, in MODULES order; empty means all."""
    if not text or not text.strip():
        return list(MODULES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}: choose among {', '.join(MODULES)}")
    return [m for m in MODULES if m in names]


def load(name: str) -> Benchmark:
    if name not in MODULES:
        raise ValueError(f"unknown benchmark {name!r}: choose among {', '.join(MODULES)}")
    return cast(Benchmark, importlib.import_module(f"bench.{name}"))


def run_module(name: str, quick: bool = False) -> dict[str, Any]:
    """One module's entry of results.json; a module that raises is recorded with its error, not re-raised."""
    started, began = now_ms(), time.perf_counter()
    entry: dict[str, Any] = {"measured_ms": started, "quick": quick}
    print(f"== {name}{' (quick)' if quick else ''}", flush=True)
    try:
        benchmark = load(name)
        entry |= benchmark.section(benchmark.run(quick=quick)).to_dict()
        validate({"machine": {}, "modules": {name: entry}})  # a bad shape fails this module, not the run
    except Exception as exc:
        traceback.print_exc()
        entry["error"] = f"{type(exc).__name__}: {exc}"
    entry["wall_s"] = round(time.perf_counter() - began, 1)
    entry["commit"] = machine.describe()["commit"]
    return entry


def run(
    names: Iterable[str], quick: bool = False, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Run `names`; modules of `previous` not rerun are kept when it was measured on the same hardware."""
    here = machine.describe()
    modules: dict[str, Any] = {}
    if previous is not None and machine.same_hardware(previous.get("machine", {}), here):
        modules = dict(previous.get("modules", {}))
    elif previous is not None:
        print("results.json was measured on other hardware: its modules are dropped")
    for name in names:
        modules[name] = run_module(name, quick)
    results = {
        "format": FORMAT,
        "measured_ms": now_ms(),
        "machine": here,
        "modules": {m: modules[m] for m in MODULES if m in modules},
    }
    validate(results)
    return results
