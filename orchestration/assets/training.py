# No `from __future__ import annotations`: Dagster reads the parameter annotations at definition time.
"""Stage 3, training: a rolling window of labelled partitions → a trained candidate → its evaluation and
the gate. Unpartitioned: the nightly schedule and the drift sensor run them (`retraining_job`)."""

import dagster as dg
import pyarrow as pa

from ml.data_checks import check_class_balance, check_features_finite, check_spec_hash, class_shares
from ml.lake import LakeError
from ml.plots import plot_confusion, plot_equity, plot_loss_curve
from ml.profiles import candidate_config
from ml.review import CandidateEvidence, candidate_evidence, describe_splits, gate_in_order
from ml.workflow import MODEL_NAME, register_candidate, train_candidate
from orchestration.assets.features import labelled_features
from orchestration.metadata import check_result, evaluation_table, md_table, path, shares_table
from orchestration.partitions import TIME_PARTITIONS
from orchestration.resources import (
    DatabaseResource,
    LakeResource,
    ModelRegistryResource,
    PipelineSettingsResource,
)
from orchestration.retraining import record_retraining

GROUP = "training"


class TrainingWindowConfig(dg.Config):
    """Which partitions to train on (defaults: the settings' window ending at the newest partition)."""

    partitions: int | None = None  # how many time partitions; None: TRAINING_WINDOW_PARTITIONS
    end_partition: str | None = None  # time partition key of the newest one, e.g. 2026-01-01-05:00
    symbols: list[str] | None = None  # None: TRADING_PAIRS


class CandidateRunConfig(dg.Config):
    """How big a model to train (defaults: TRAINING_PROFILE, TRAINING_EPOCHS)."""

    profile: str | None = None  # tiny, quick or full (ml.profiles); None: TRAINING_PROFILE
    epochs: int | None = None
    seed: int = 0
    learning_rate: float | None = None


@dg.asset(
    deps=[labelled_features],
    group_name=GROUP,
    io_manager_key="lake_io_manager",
    kinds={"parquet"},
    description="The labelled rows of the newest TRAINING_WINDOW_PARTITIONS time partitions of every "
    "symbol, with the chronological split the candidate trains on and walk-forward folds, purged.",
)
def training_dataset(
    context: dg.AssetExecutionContext,
    config: TrainingWindowConfig,
    lake: LakeResource,
    settings: PipelineSettingsResource,
) -> dg.Output[pa.Table]:
    spec = settings.spec()
    symbols = config.symbols or settings.symbols
    end_ms = None
    if config.end_partition is not None:
        end_ms = int(
            TIME_PARTITIONS.time_window_for_partition_key(config.end_partition).start.timestamp() * 1000
        )
    layout = lake.layout()
    count = config.partitions or settings.training_window_partitions
    starts = layout.newest_partitions("labelled_features", symbols, count, end_ms=end_ms)
    if not starts:
        raise LakeError(
            f"no labelled_features partitions of {', '.join(symbols)} in {layout.root}: materialise them first"
        )
    found = layout.read_labelled_window(
        dataset="labelled_features", symbols=symbols, starts_ms=starts, spec=spec
    )
    table = pa.concat_tables(list(found.values())).sort_by([("symbol", "ascending"), ("ts", "ascending")])
    per_symbol = {s: sum(t.num_rows for (sym, _), t in found.items() if sym == s) for s in symbols}
    fractions = candidate_config(settings.training_profile, epochs=1).fractions
    splits = describe_splits(table, spec, fractions=fractions)
    context.log.info(f"training window: {len(starts)} partitions, {table.num_rows} rows")
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": table.num_rows,
            "partitions": len(found),
            "time_partitions": len(starts),
            "window_start_ms": starts[0],
            "window_end_ms": max(int(t.column("ts")[-1].as_py()) for t in found.values() if t.num_rows)
            if table.num_rows
            else starts[-1],
            "rows_per_symbol": md_table(["symbol", "rows"], [[s, n] for s, n in per_symbol.items()]),
            "splits": md_table(
                ["split", "train", "validation", "test", "test start (ms)", "test end (ms)", "purge (ms)"],
                [list(s.values()) for s in splits],
            ),
            "class_shares": shares_table(class_shares(table)),
        },
    )


@dg.asset_check(asset=training_dataset, blocking=True)
def class_balance(training_dataset: pa.Table, settings: PipelineSettingsResource) -> dg.AssetCheckResult:
    """Every direction class's share in [CLASS_SHARE_MIN, CLASS_SHARE_MAX] at every horizon."""
    low, high = settings.share_bounds
    outcome = check_class_balance(training_dataset, minimum=low, maximum=high)
    return check_result(outcome, severity=dg.AssetCheckSeverity.ERROR)


@dg.asset_check(asset=training_dataset, blocking=True)
def training_window_clean(
    training_dataset: pa.Table, settings: PipelineSettingsResource, registry: ModelRegistryResource
) -> dg.AssetCheckResult:
    """The whole window is finite and of the production model's feature spec (a partition whose own
    checks failed cannot slip into training)."""
    spec = settings.spec()
    finite = check_features_finite(training_dataset, spec.names)
    if not finite.passed:
        return check_result(finite, severity=dg.AssetCheckSeverity.ERROR)
    production = registry.registry().production()
    expected = spec.spec_hash if production is None else production.feature_spec_hash
    source = "the configured feature spec" if production is None else f"production model {production.version}"
    return check_result(
        check_spec_hash(training_dataset, expected, source), severity=dg.AssetCheckSeverity.ERROR
    )


@dg.asset(
    group_name=GROUP,
    io_manager_key="lake_io_manager",
    kinds={"pytorch"},
    description="A CNN-LSTM trained on the training window, evaluated on its test fold beside every "
    "baseline, backtested with fees, and registered as a candidate version.",
)
def model_candidate(
    context: dg.AssetExecutionContext,
    config: CandidateRunConfig,
    training_dataset: pa.Table,
    registry: ModelRegistryResource,
    lake: LakeResource,
    settings: PipelineSettingsResource,
) -> dg.Output[CandidateEvidence]:
    spec = settings.spec()
    candidate_cfg = candidate_config(
        config.profile or settings.training_profile,
        epochs=config.epochs or settings.training_epochs,
        seed=config.seed,
        learning_rate=config.learning_rate,
    )
    candidate = train_candidate(training_dataset, candidate_cfg, spec=spec)
    models = registry.registry()
    production = models.production()
    parent = None if production is None else production.version
    manifest = register_candidate(models, candidate, parent_version=parent)
    best = candidate.best_model()
    fallback = (
        None
        if best == MODEL_NAME
        else register_candidate(models, candidate, parent_version=parent, model=best)
    )
    evidence = candidate_evidence(candidate, manifest, fallback)
    loss_png = plot_loss_curve(
        evidence.train_loss,
        evidence.val_loss,
        evidence.best_epoch,
        lake.report_dir("models", manifest.version) / "loss.png",
    )
    context.log.info(f"registered candidate {manifest.version} ({candidate.train_seconds:.1f} s of training)")
    return dg.Output(
        evidence,
        metadata={
            "model_version": manifest.version,
            "parent_version": manifest.parent_version or "none",
            "run_best_model": best,
            "fallback_version": evidence.fallback_version or "none",
            "samples": md_table(
                ["train", "validation", "test"], [[evidence.n_train, evidence.n_validation, evidence.n_test]]
            ),
            "symbols": ", ".join(evidence.symbols),
            "epochs_run": evidence.epochs_run,
            "best_epoch": evidence.best_epoch + 1,
            "train_seconds": round(evidence.train_seconds, 2),
            "training_loss_plot": path(loss_png),
            "test_fold_metrics": evaluation_table(evidence.evaluation),
            evidence.promotion_metric: evidence.metrics.get(evidence.promotion_metric),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"postgres"},
    description="The candidate judged: its test-fold metrics beside every baseline and the cost-aware "
    "backtest; promoted through the registry when it passes the gate (NOTIFY model_promoted).",
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    model_candidate: CandidateEvidence,
    registry: ModelRegistryResource,
    database: DatabaseResource,
    lake: LakeResource,
) -> dg.MaterializeResult[None]:
    evidence = model_candidate
    directory = lake.report_dir("models", evidence.version)
    confusion_png = plot_confusion(evidence.confusion, directory / "confusion.png")
    equity_png = plot_equity(
        evidence.equity_exit_ms,
        evidence.equity_bps,
        directory / "equity.png",
        title=f"Backtest of {evidence.version} on the test fold (net of fees)",
    )
    decisions = gate_in_order(registry.registry(), evidence.versions)
    decision = decisions[-1]
    record = record_retraining(database, context.run.run_id, context.run.tags, evidence, decision)
    for d in decisions:
        context.log.info(f"{d.version}: {'promoted' if d.promoted else 'kept as a candidate'}: {d.reason}")
    backtest = evidence.backtest
    return dg.MaterializeResult(
        metadata={
            "model_version": evidence.version,
            "promoted": decision.promoted,
            "promoted_version": decision.version if decision.promoted else "none",
            "gate": md_table(
                ["version", "promoted", "metric", "value", "production", "production value", "reason"],
                [
                    [
                        d.version,
                        d.promoted,
                        d.metric,
                        d.candidate_value,
                        d.production_version,
                        d.production_value,
                        d.reason,
                    ]
                    for d in decisions
                ],
            ),
            "gate_reason": decision.reason,
            "gate_metric": decision.metric,
            "candidate_value": decision.candidate_value,
            "production_version_before": decision.production_version or "none",
            "production_value_before": decision.production_value,
            "retraining_trigger": record.trigger,
            "test_fold_metrics": evaluation_table(evidence.evaluation),
            "backtest": md_table(
                [
                    "trades",
                    "net PnL (bps)",
                    "gross (bps)",
                    "fees (bps)",
                    "hit rate",
                    "max drawdown (bps)",
                    "Sharpe/trade",
                ],
                [
                    [
                        backtest.get("n_trades"),
                        backtest.get("total_pnl_bps"),
                        backtest.get("gross_pnl_bps"),
                        backtest.get("fees_bps"),
                        backtest.get("hit_rate"),
                        backtest.get("max_drawdown_bps"),
                        backtest.get("sharpe_per_trade"),
                    ]
                ],
            ),
            "confusion_matrix_plot": path(confusion_png),
            "equity_curve_plot": path(equity_png),
        }
    )


CHECKS = [class_balance, training_window_clean]
