"""`make bench`: run the benchmarks, write bench/results.json and docs/benchmarks.md.

    python -m bench                               # everything (BENCH_ONLY, BENCH_QUICK from the environment)
    python -m bench --only features,orderbook     # those modules; the others' results are kept
    python -m bench --quick [--out PATH]          # small sizes: prints the tables, writes only to --out

Exits 1 when a module failed (its error is recorded in the results and the doc).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import report, runner


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks in bench/.")
    parser.add_argument(
        "--only",
        default=os.environ.get("BENCH_ONLY", ""),
        help=f"comma-separated modules among {','.join(runner.MODULES)} (default BENCH_ONLY, else all)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
        help="small sizes, to check that the benchmarks run (default BENCH_QUICK)",
    )
    parser.add_argument("--out", type=Path, default=None, help=f"results file (default {report.RESULTS})")
    parser.add_argument("--doc", type=Path, default=None, help=f"markdown to generate (default {report.DOC})")
    args = parser.parse_args(argv)
    try:
        names = runner.parse_only(args.only)
    except ValueError as exc:
        parser.error(str(exc))

    out: Path | None = args.out if args.out or args.quick else report.RESULTS
    doc: Path | None = args.doc if args.doc or args.quick else report.DOC
    previous = None
    if out is not None and out.is_file() and set(names) != set(runner.MODULES):
        try:
            previous = json.loads(out.read_text())
        except json.JSONDecodeError:
            print(f"{out} is not JSON: starting afresh")
    results = runner.run(names, quick=args.quick, previous=previous)
    if out is None:
        print(report.render(results))
    else:
        report.write(results, out, doc)
    failed = [m for m in names if results["modules"][m].get("error")]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
