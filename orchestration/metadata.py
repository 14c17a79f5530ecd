"""Rendering helpers for asset metadata: markdown tables and file links. Presentation only."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from ml.data_checks import CheckOutcome, FeatureStats


def number(value: Any, digits: int = 4) -> str:
    """A table cell: integers as they are, floats to ``digits`` significant places, None as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}g}"
    return str(value)


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> dg.MetadataValue:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(number(c) for c in row) + " |" for row in rows]
    return dg.MetadataValue.md("\n".join(lines))


def feature_table(stats: Sequence[FeatureStats]) -> dg.MetadataValue:
    """The per-feature summary: one row per feature."""
    return md_table(
        ["feature", "mean", "std", "min", "p01", "median", "p99", "max", "non-finite"],
        [[s.name, s.mean, s.std, s.minimum, s.p01, s.median, s.p99, s.maximum, s.non_finite] for s in stats],
    )


def shares_table(shares: Mapping[str, Mapping[str, float]]) -> dg.MetadataValue:
    """Class shares per horizon."""
    classes = list(next(iter(shares.values()), {}).keys())
    return md_table(
        ["horizon", *classes],
        [[h, *(f"{row[c]:.1%}" for c in classes)] for h, row in shares.items()],
    )


def evaluation_table(evaluation: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dg.MetadataValue:
    """Metrics of the model and every baseline per horizon (the test fold)."""
    rows = []
    for name, horizons in evaluation.items():
        for horizon, metrics in horizons.items():
            rows.append(
                [
                    name,
                    horizon,
                    int(metrics.get("n", 0)),
                    metrics.get("accuracy"),
                    metrics.get("macro_f1"),
                    metrics.get("log_loss"),
                ]
            )
    return md_table(["model", "horizon", "n", "accuracy", "macro-F1", "log-loss"], rows)


def path(value: Path | str) -> dg.MetadataValue:
    return dg.MetadataValue.path(str(value))


def check_result(outcome: CheckOutcome, *, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    """An asset check result from a plain check's outcome."""
    metadata: dict[str, Any] = {"description": outcome.description, **outcome.metadata}
    return dg.AssetCheckResult(
        passed=outcome.passed, severity=severity, metadata=metadata, description=outcome.description
    )
