"""`depthcharge train`: recorded rows in the database → features and labels → a trained, calibrated and
evaluated CNN-LSTM beside every baseline, registered and passed through the model gate (ml.gate: it must
beat production and every other model of the run beyond the interval of the gate metric); when the gate
refuses it and a baseline was the run's best, that baseline is registered and gated too.

A thin adapter over `ml.workflow.train_from_database` (which the Dagster assets share, partitioned by
day and symbol): it resolves the options and settings, and prints the outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from depthcharge.commands._context import database
from depthcharge.commands.recording import parse_time_ms
from infra.settings import load_settings
from schemas.features import feature_spec

if TYPE_CHECKING:
    from ml.workflow import TrainingRun

# `ml` (torch, scikit-learn, TA-Lib) is imported inside the functions that need it: every `depthcharge`
# command loads this module, and the paper exchange or `db status` should not pay seconds for PyTorch.


def print_training(run: TrainingRun) -> None:
    candidate = run.candidate
    click.echo(
        "labelled rows: "
        + ", ".join(f"{s} {n:,}" for s, n in run.rows.items())
        + f"; samples train/val/test {candidate.data_window.n_train:,}/{candidate.data_window.n_validation:,}"
        f"/{candidate.data_window.n_test:,}; trained in {candidate.train_seconds:.1f} s "
        f"({candidate.history.epochs_run} epochs, best {candidate.history.best_epoch})"
    )
    click.echo("test fold (probabilities calibrated on the validation fold):")
    click.echo(candidate.evaluation.render())
    bt = candidate.backtest
    click.echo(
        f"backtest ({bt.config.horizon_s} s signals, {bt.config.fee_bps_per_side} bps fee per side): "
        f"{bt.n_trades} trades, PnL {bt.total_pnl_bps:+.1f} bps (gross {bt.gross_pnl_bps:+.1f}), "
        f"hit rate {bt.hit_rate:.2f}, max drawdown {bt.max_drawdown_bps:.1f} bps"
    )
    for manifest, decision in run.attempts or [(run.manifest, run.decision)]:
        state = "PROMOTED to production" if decision.promoted else "kept as a candidate"
        click.echo(f"gate: {manifest.model_type} {manifest.version} {state}: {decision.reason}")
    served = run.promoted
    click.echo(
        f"the gate promotes: {served.model_type} {served.version}"
        if served is not None
        else "the gate promotes: nothing from this run (production unchanged)"
    )


@click.command()
@click.option("--symbols", default=None, help="Comma-separated symbols (default: TRADING_PAIRS).")
@click.option(
    "--from", "start", default=None, help="First row, ms or ISO 8601 (default: the first recorded)."
)
@click.option("--to", "end", default=None, help="Last row, ms or ISO 8601 (default: the last recorded).")
@click.option("--epochs", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def train(symbols: str | None, start: str | None, end: str | None, epochs: int, seed: int) -> None:
    """Train, evaluate and register models on recorded rows; the gate promotes the best if it earns it."""
    from ml.candidate import tuned_config
    from ml.workflow import train_from_database

    settings = load_settings()
    chosen = (
        [s.strip().upper() for s in symbols.split(",") if s.strip()] if symbols else settings.feed.symbols
    )
    start_ms = parse_time_ms(start, "--from") if start else None
    end_ms = parse_time_ms(end, "--to") if end else None
    with database(settings) as target:
        try:
            run = train_from_database(
                target,
                chosen,
                start_ms=start_ms,
                end_ms=end_ms,
                models_dir=settings.models_dir,
                spec=feature_spec(settings.snapshot_interval_ms),
                config=tuned_config(seed=seed, epochs=epochs),
            )
        except ValueError as exc:  # NoRecordedData included
            raise click.ClickException(str(exc)) from None
        print_training(run)
