"""`depthcharge train`: recorded rows in the database → features and labels → a trained, evaluated and
registered model, promoted when it beats production on the agreed metric.

The Dagster assets of the orchestration issue run the same `ml.workflow` steps, partitioned by day and
symbol; this command is the one-shot path for the demo and for a quick look at a recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pyarrow as pa

from depthcharge.commands._context import database
from depthcharge.commands.recording import parse_time_ms
from infra.db.connection import Database
from infra.db.repositories.market_data import read_candles, read_snapshots
from infra.settings import load_settings
from schemas.features import feature_spec
from schemas.market import CANDLE_INTERVAL_MS
from schemas.model import ModelManifest

if TYPE_CHECKING:
    from ml.registry import PromotionDecision
    from ml.workflow import Candidate, CandidateConfig

# `ml` (torch, scikit-learn, TA-Lib) is imported inside the functions that need it: every `depthcharge`
# command loads this module, and the paper exchange or `db status` should not pay seconds for PyTorch.

MS_PER_DAY = 86_400_000


@dataclass
class TrainingRun:
    candidate: Candidate
    manifest: ModelManifest
    decision: PromotionDecision
    rows: dict[str, int]


def recorded_span(db: Database, symbol: str) -> tuple[int, int] | None:
    """First and last row ts of ``symbol`` in market_snapshots, or None when nothing is recorded."""
    with db.connect() as conn:
        row = conn.execute(
            """SELECT (extract(epoch FROM min(ts)) * 1000)::bigint, (extract(epoch FROM max(ts)) * 1000)::bigint
               FROM market_snapshots WHERE symbol = %s""",
            (symbol,),
        ).fetchone()
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])


def labelled_from_database(
    db: Database, symbol: str, start_ms: int, end_ms: int, snapshot_interval_ms: int
) -> pa.Table:
    """The labelled_features table of ``symbol`` for rows in [start_ms, end_ms] read from the database,
    with the candle history K(t) needs (CANDLE_WINDOW minutes before the first row)."""
    from ml.features.candle_window import CANDLE_WINDOW
    from ml.workflow import labelled_features

    spec = feature_spec(snapshot_interval_ms)
    with db.connect() as conn:
        rows = read_snapshots(conn, symbol, start_ms, end_ms + 1)
        candles = read_candles(conn, symbol, start_ms - (CANDLE_WINDOW + 1) * CANDLE_INTERVAL_MS, end_ms + 1)
    if rows.num_rows == 0:
        raise click.ClickException(f"no rows of {symbol} recorded between {start_ms} and {end_ms}")
    return labelled_features(rows, candles, spec=spec)


def train_and_register(
    db: Database,
    symbols: list[str],
    start_ms: int,
    end_ms: int,
    *,
    models_dir: Path,
    snapshot_interval_ms: int,
    config: CandidateConfig,
) -> TrainingRun:
    from ml.registry import ModelRegistry
    from ml.workflow import promote_if_better, register_candidate, train_candidate

    tables = [labelled_from_database(db, s, start_ms, end_ms, snapshot_interval_ms) for s in symbols]
    candidate = train_candidate(tables, config, spec=feature_spec(snapshot_interval_ms))
    registry = ModelRegistry(db, root=models_dir)
    manifest = register_candidate(registry, candidate)
    decision = promote_if_better(registry, manifest.version)
    return TrainingRun(
        candidate, manifest, decision, {s: t.num_rows for s, t in zip(symbols, tables, strict=True)}
    )


def print_training(run: TrainingRun) -> None:
    candidate = run.candidate
    click.echo(
        "labelled rows: "
        + ", ".join(f"{s} {n:,}" for s, n in run.rows.items())
        + f"; samples train/val/test {candidate.data_window.n_train:,}/{candidate.data_window.n_validation:,}"
        f"/{candidate.data_window.n_test:,}; trained in {candidate.train_seconds:.1f} s "
        f"({candidate.history.epochs_run} epochs, best {candidate.history.best_epoch})"
    )
    click.echo("test fold:")
    click.echo(candidate.evaluation.render())
    bt = candidate.backtest
    click.echo(
        f"backtest ({bt.config.horizon_s} s signals, {bt.config.fee_bps_per_side} bps fee per side): "
        f"{bt.n_trades} trades, PnL {bt.total_pnl_bps:+.1f} bps (gross {bt.gross_pnl_bps:+.1f}), "
        f"hit rate {bt.hit_rate:.2f}, max drawdown {bt.max_drawdown_bps:.1f} bps"
    )
    state = "promoted to production" if run.decision.promoted else "kept as a candidate"
    click.echo(f"model {run.manifest.version} registered, {state}: {run.decision.reason}")


@click.command()
@click.option("--symbols", default=None, help="Comma-separated symbols (default: TRADING_PAIRS).")
@click.option(
    "--from", "start", default=None, help="First row, ms or ISO 8601 (default: the first recorded)."
)
@click.option("--to", "end", default=None, help="Last row, ms or ISO 8601 (default: the last recorded).")
@click.option("--epochs", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def train(symbols: str | None, start: str | None, end: str | None, epochs: int, seed: int) -> None:
    """Train, evaluate and register a model on recorded rows; promote it if it beats production."""
    from ml.workflow import quick_config

    settings = load_settings()
    chosen = [s.strip().upper() for s in symbols.split(",") if s.strip()] if symbols else settings.symbols
    with database(settings) as target:
        spans = {s: recorded_span(target, s) for s in chosen}
        missing = [s for s, span in spans.items() if span is None]
        if missing:
            raise click.ClickException(f"nothing recorded for {', '.join(missing)}: record first")
        start_ms = parse_time_ms(start, "--from") if start else min(sp[0] for sp in spans.values() if sp)
        end_ms = parse_time_ms(end, "--to") if end else max(sp[1] for sp in spans.values() if sp)
        try:
            run = train_and_register(
                target,
                chosen,
                start_ms,
                end_ms,
                models_dir=settings.models_dir,
                snapshot_interval_ms=settings.snapshot_interval_ms,
                config=quick_config(seed=seed, epochs=epochs),
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        print_training(run)
