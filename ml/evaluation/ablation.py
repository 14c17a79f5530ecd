"""The ablation study of the CNN-LSTM: named one-change variants of a base candidate configuration, each
run through the same protocol folds, and the table that compares them.

Every variant changes one thing of :func:`ml.candidate.quick_config` (input scaling, class weights, the
dead band, the window the network reads, capacity, regularisation, the learning-rate schedule and
patience, the multi-task weights, the decision-time skip path); ``combined`` is the configuration the
study settled on (:func:`ml.candidate.tuned_config`). Variants are tuned on development recordings
(other seeds than the protocol's), never on the folds the final table reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ml.candidate import MODEL_NAME, CandidateConfig, quick_config, tuned_config
from ml.evaluation.protocol import ProtocolResult

Variant = Callable[[CandidateConfig], CandidateConfig]


def _model(**kw: Any) -> Variant:
    return lambda c: replace(c, model=replace(c.model, **kw))


def _trainer(**kw: Any) -> Variant:
    return lambda c: replace(c, trainer=replace(c.trainer, **kw))


def _on_tuned(change: Variant) -> Variant:
    """``change`` applied to the tuned configuration (at the seed and epochs it was given)."""
    return lambda c: change(tuned_config(seed=c.trainer.seed, epochs=c.trainer.epochs))


VARIANTS: dict[str, tuple[str, Variant]] = {
    "base": ("quick_config as the demo trained it", lambda c: c),
    "zscore": (
        "input scaling: raw values z-scored, no row-local variants",
        lambda c: replace(c, preprocessing="zscore"),
    ),
    "balanced": ("class weights n/(3·count) in the cross-entropy", _trainer(class_weights="balanced")),
    "band_1bps": (
        "dead band 1 bps instead of 0.5 (another task: labels change)",
        lambda c: replace(c, dead_band_bps=1.0),
    ),
    "rows_30": ("the network reads the last 30 of the 60 rows", _model(input_rows=30)),
    "rows_10": ("the network reads the last 10 of the 60 rows", _model(input_rows=10)),
    "small": (
        "capacity: CNN (8,), LSTM 16, head 16",
        _model(cnn_channels=(8,), cnn_kernel_sizes=(3,), lstm_hidden=16, head_hidden=16, attention_dim=8),
    ),
    "large": (
        "capacity: CNN (32, 32), LSTM 48, head 64",
        _model(cnn_channels=(32, 32), lstm_hidden=48, head_hidden=64, attention_dim=32),
    ),
    "dropout_0.5": (
        "regularisation: dropout 0.5, weight decay 0.05",
        lambda c: _trainer(weight_decay=0.05)(_model(dropout=0.5)(c)),
    ),
    "lr_1e-4": ("learning rate 1e-4 (from 5e-4), 20 epochs", _trainer(learning_rate=1e-4, epochs=20)),
    "cosine_p6": ("cosine schedule, early-stopping patience 6", _trainer(scheduler="cosine", patience=6)),
    "direction_only": (
        "multi-task weights: confidence 0, return 0",
        _trainer(confidence_weight=0.0, return_weight=0.0),
    ),
    "monitor_direction": ("early stopping on the validation direction loss", _trainer(monitor="direction")),
    "skip": ("a linear path from the decision-time vector to the heads", _model(last_row_skip=True)),
    "combined": (
        "the tuned configuration (ml.candidate.tuned_config)",
        lambda c: tuned_config(seed=c.trainer.seed, epochs=c.trainer.epochs),
    ),
    "combined_balanced": (
        "the tuned configuration with class weights n/(3·count) in the cross-entropy",
        _on_tuned(_trainer(class_weights="balanced")),
    ),
    "combined_lr_1e-4": (
        "the tuned configuration with learning rate 1e-4 (from 5e-4)",
        _on_tuned(_trainer(learning_rate=1e-4)),
    ),
    "combined_dropout": (
        "the tuned configuration with dropout 0.5 and weight decay 0.05",
        _on_tuned(lambda c: _trainer(weight_decay=0.05)(_model(dropout=0.5)(c))),
    ),
}


def variant_config(name: str, base: CandidateConfig | None = None) -> CandidateConfig:
    """The configuration of variant ``name`` applied to ``base`` (default ``quick_config()``)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown ablation variant {name!r}; known: {', '.join(VARIANTS)}")
    return VARIANTS[name][1](base or quick_config())


def ablation_row(name: str, result: ProtocolResult) -> dict[str, Any]:
    """One line of the table: the CNN-LSTM's pooled macro-F1 and log-loss per horizon, its gain over the best
    baseline of each metric with the interval, and the wall time."""
    table = result.table()
    row: dict[str, Any] = {
        "variant": name,
        "description": VARIANTS.get(name, ("", None))[0],
        "seconds": round(result.seconds),
    }
    for h in result.horizons_s:
        key = f"{h}s"
        for metric in ("macro_f1", "log_loss"):
            model = table["metrics"][MODEL_NAME][key][metric]
            better = max if metric == "macro_f1" else min
            baselines = {b: table["metrics"][b][key][metric]["value"] for b in table["cnn_lstm_gain_over"]}
            best = better(baselines, key=lambda b: baselines[b])
            g = table["cnn_lstm_gain_over"][best][key][metric]
            row[f"{metric}_{key}"] = model["value"]
            row[f"{metric}_{key}_vs"] = {
                "baseline": best,
                "gain": g["value"],
                "low": g["low"],
                "high": g["high"],
            }
    row["epochs"] = [len(f.history.get("records", [])) for f in result.folds]
    return row


def render_ablation(rows: Sequence[dict[str, Any]], horizons_s: Sequence[int]) -> str:
    """A Markdown table: per variant and horizon, macro-F1 and log-loss with the gain over the best baseline."""
    head = (
        "| variant | "
        + " | ".join(f"F1 {h}s (gain [95 %]) | LL {h}s (gain [95 %])" for h in horizons_s)
        + " | s |"
    )
    lines = [head, "|" + " --- |" * (2 + 2 * len(horizons_s))]
    for r in rows:
        cells = []
        for h in horizons_s:
            for metric in ("macro_f1", "log_loss"):
                v, g = r[f"{metric}_{h}s"], r[f"{metric}_{h}s_vs"]
                cells.append(f"{v:.3f} ({g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}])")
        lines.append(f"| {r['variant']} | " + " | ".join(cells) + f" | {r['seconds']} |")
    return "\n".join(lines)
