"""The protocol's report: ``summary.json`` (every number) and ``report.html`` (tables and plots, the PNGs
embedded, so the file stands alone), plus ``predictions.npz`` (every fold's test labels and every model's
probabilities, to recompute anything later).

Plots (matplotlib, Agg backend): metrics with their 95 % intervals per horizon, pooled confusion matrices,
reliability diagrams before and after temperature scaling, the CNN-LSTM's loss curves per fold, and the
equity curves of every model's 10 s signals at taker and maker fees.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; set before pyplot is imported
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ml.candidate import MODEL_NAME
from ml.evaluation.protocol import ProtocolResult
from schemas.model import CLASS_NAMES

METRIC_LABELS = {"accuracy": "accuracy", "macro_f1": "macro-F1", "log_loss": "log-loss", "ece": "ECE"}


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(data: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def metrics_plot(table: dict[str, Any], horizons: list[str]) -> str:
    models = list(table["metrics"])
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    width = 0.8 / len(models)
    for ax, metric in zip(axes, METRIC_LABELS, strict=True):
        for i, m in enumerate(models):
            vals = [table["metrics"][m][h][metric] for h in horizons]
            x = np.arange(len(horizons)) + (i - (len(models) - 1) / 2) * width
            y = [v["value"] for v in vals]
            err = [[v["value"] - v["low"] for v in vals], [v["high"] - v["value"] for v in vals]]
            ax.errorbar(x, y, yerr=err, fmt="o", capsize=3, label=m)
        ax.set_xticks(np.arange(len(horizons)), horizons)
        ax.set_title(METRIC_LABELS[metric] + (" (lower is better)" if metric in ("log_loss", "ece") else ""))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _png(fig)


def confusion_plot(result: ProtocolResult) -> str:
    models = result.models
    hs = result.horizons_s
    fig, axes = plt.subplots(len(models), len(hs), figsize=(3.2 * len(hs), 3 * len(models)), squeeze=False)
    for i, m in enumerate(models):
        for k, h in enumerate(hs):
            cm = result.confusion(m, k)
            ax = axes[i][k]
            share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
            ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
            for a in range(3):
                for b in range(3):
                    ax.text(b, a, f"{cm[a, b]}", ha="center", va="center", fontsize=8)
            ax.set_xticks(range(3), CLASS_NAMES, fontsize=7)
            ax.set_yticks(range(3), CLASS_NAMES, fontsize=7)
            ax.set_title(f"{m} {h}s", fontsize=9)
            if k == 0:
                ax.set_ylabel("true")
            if i == len(models) - 1:
                ax.set_xlabel("predicted")
    return _png(fig)


def reliability_plot(result: ProtocolResult) -> str:
    hs = result.horizons_s
    fig, axes = plt.subplots(1, len(hs), figsize=(4.2 * len(hs), 3.8), squeeze=False)
    for k, h in enumerate(hs):
        ax = axes[0][k]
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        for m in result.models:
            for calibrated, style in ((False, ":"), (True, "-")):
                bins = result.reliability(m, k, calibrated)
                ok = bins[:, 0] > 0
                conf = bins[ok, 1] / bins[ok, 0]
                acc = bins[ok, 2] / bins[ok, 0]
                ax.plot(conf, acc, style, marker="o", ms=3, label=f"{m}{'' if calibrated else ' (raw)'}")
        ax.set_title(f"reliability {h}s: predicted class")
        ax.set_xlabel("mean confidence")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6)
    return _png(fig)


def loss_plot(result: ProtocolResult) -> str:
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for f in result.folds:
        recs = f.history.get("records", [])
        if not recs:
            continue
        epochs = [r["epoch"] for r in recs]
        line = ax.plot(
            epochs, [r["train_loss"] for r in recs], "-", lw=1, label=f"{f.recording}/{f.fold} train"
        )
        ax.plot(epochs, [r["val_loss"] for r in recs], "--", lw=1, color=line[0].get_color(), label="val")
    ax.set_xlabel("epoch")
    ax.set_ylabel("multi-task loss")
    ax.set_title("CNN-LSTM loss per fold (solid train, dashed validation)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=3)
    return _png(fig)


def equity_plot(result: ProtocolResult) -> str:
    fees = [name for name, _ in result.protocol.fees_bps]
    fig, axes = plt.subplots(1, len(fees), figsize=(7 * len(fees), 3.6), squeeze=False)
    for ax, fee in zip(axes[0], fees, strict=True):
        for m in result.models:
            curve = result.equity(m, fee)
            ax.plot(np.arange(len(curve)), curve, lw=1, label=f"{m} ({len(curve)} trades)")
        ax.set_title(f"cumulative net PnL [bps], {result.config.backtest.horizon_s} s signals, {fee} fees")
        ax.set_xlabel("trade")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _png(fig)


def _cell(v: dict[str, float]) -> str:
    return f"{v['value']:.4f} <small>[{v['low']:.4f}, {v['high']:.4f}]</small>"


def metrics_html(table: dict[str, Any], horizons: list[str]) -> str:
    rows = []
    for m, per in table["metrics"].items():
        for h in horizons:
            cells = "".join(f"<td>{_cell(per[h][k])}</td>" for k in METRIC_LABELS)
            rows.append(f"<tr><td>{html.escape(m)}</td><td>{h}</td>{cells}</tr>")
    head = "".join(f"<th>{v}</th>" for v in METRIC_LABELS.values())
    return f"<table><tr><th>model</th><th>horizon</th>{head}</tr>{''.join(rows)}</table>"


def gains_html(table: dict[str, Any], horizons: list[str]) -> str:
    rows = []
    for b, per in table["cnn_lstm_gain_over"].items():
        for h in horizons:
            cells = []
            for k in ("macro_f1", "log_loss"):
                g = per[h][k]
                cells.append(
                    f'<td class="{g["verdict"]}">{g["value"]:+.4f} <small>[{g["low"]:+.4f}, {g["high"]:+.4f}]</small> '
                    f"{g['verdict']}</td>"
                )
            rows.append(f"<tr><td>{html.escape(b)}</td><td>{h}</td>{''.join(cells)}</tr>")
    return (
        "<table><tr><th>CNN-LSTM vs</th><th>horizon</th><th>macro-F1 gain</th><th>log-loss reduction</th></tr>"
        f"{''.join(rows)}</table>"
    )


def backtest_html(bt: dict[str, dict[str, Any]]) -> str:
    cols = (
        "n_trades",
        "total_pnl_bps",
        "gross_pnl_bps",
        "mean_trade_bps",
        "hit_rate",
        "sharpe_per_trade",
        "max_drawdown_bps",
    )
    rows = []
    for m, per in bt.items():
        for fee, s in per.items():
            cells = "".join(
                f"<td>{s[c]:.3f}</td>" if isinstance(s[c], float) else f"<td>{s[c]}</td>" for c in cols
            )
            rows.append(
                f"<tr><td>{html.escape(m)}</td><td>{fee} ({s['fee_bps_per_side']} bps/side)</td>{cells}</tr>"
            )
    head = "".join(f"<th>{c}</th>" for c in cols)
    return f"<table><tr><th>model</th><th>fees</th>{head}</tr>{''.join(rows)}</table>"


def calibration_html(cal: dict[str, Any]) -> str:
    rows = []
    for m, per in cal["models"].items():
        for h, v in per.items():
            temps = ", ".join("-" if t is None else f"{t:.2f}" for t in v["temperatures"])
            rows.append(
                f"<tr><td>{html.escape(m)}</td><td>{h}</td><td>{v['ece_before']:.4f}</td><td>{v['ece_after']:.4f}</td>"
                f"<td>{temps}</td></tr>"
            )
    conf = cal.get("confidence_head")
    extra = (
        f"<p>CNN-LSTM confidence head (P(10 s direction right)): ECE {conf['ece_before']:.4f} before, "
        f"{conf['ece_after']:.4f} after its temperature.</p>"
        if conf
        else ""
    )
    return (
        "<table><tr><th>model</th><th>horizon</th><th>test ECE before</th><th>after</th><th>T per fold</th></tr>"
        f"{''.join(rows)}</table>{extra}"
    )


STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
td.win { background: #dff5df; } td.loss { background: #f8dcdc; } td.tie { background: #f6f3dc; }
small { color: #666; }
"""


def write_report(
    result: ProtocolResult, out_dir: Path, *, title: str = "Depthcharge evaluation"
) -> dict[str, Path]:
    """Write summary.json, report.html and predictions.npz into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    paths = {
        "summary": out_dir / "summary.json",
        "report": out_dir / "report.html",
        "predictions": out_dir / "predictions.npz",
    }
    paths["summary"].write_text(json.dumps(summary, indent=1, default=float) + "\n")
    arrays: dict[str, np.ndarray] = {}
    for i, f in enumerate(result.folds):
        arrays[f"fold{i}_ts_ms"] = f.ts_ms
        arrays[f"fold{i}_direction"] = f.direction
        arrays[f"fold{i}_movement_bps"] = f.movement_bps
        for m, p in f.proba.items():
            arrays[f"fold{i}_{m}"] = p
    np.savez_compressed(paths["predictions"], allow_pickle=False, **arrays)

    horizons = [f"{h}s" for h in result.horizons_s]
    pooled = summary["pooled"]
    beats = pooled["beats_every_baseline"]
    verdict = "; ".join(
        f"{h}: macro-F1 {'yes' if beats[h]['macro_f1'] else 'no'}, log-loss {'yes' if beats[h]['log_loss'] else 'no'}"
        for h in horizons
    )
    recs = "".join(
        f"<li>{html.escape(r['name'])}: {html.escape(json.dumps({k: v for k, v in r.items() if k != 'name'}))}</li>"
        for r in result.recordings
    )
    per_recording = "".join(
        f"<h3>{html.escape(name)}</h3>{metrics_html(t, horizons)}{gains_html(t, horizons)}"
        for name, t in summary["per_recording"].items()
    )
    body = f"""
<h1>{html.escape(title)}</h1>
<p>Walk-forward protocol: {result.protocol.n_folds} folds per recording, test blocks of
{result.protocol.test_fraction:.0%} of the windows, validation {result.protocol.validation_fraction:.0%} of each
fold's history; 95 % block-bootstrap intervals ({pooled["bootstrap"]["n_blocks"]} blocks of
{(result.protocol.block_s or 2 * max(result.horizons_s))} s in {pooled["bootstrap"]["n_series"]} series,
{pooled["bootstrap"]["n_resamples"]} resamples). Probabilities are temperature-calibrated on each fold's
validation block. Wall time {result.seconds:.0f} s.</p>
<ul>{recs}</ul>
<p><b>Does the CNN-LSTM beat every baseline beyond the interval?</b> {verdict}</p>
<h2>All recordings pooled</h2>
{metrics_html(pooled, horizons)}
{_img(metrics_plot(pooled, horizons), "metrics with intervals")}
<h2>CNN-LSTM against each baseline (paired)</h2>
{gains_html(pooled, horizons)}
<h2>Per recording</h2>
{per_recording}
<h2>Calibration</h2>
{calibration_html(summary["calibration"])}
{_img(reliability_plot(result), "reliability diagrams")}
<h2>Confusion matrices (pooled)</h2>
{_img(confusion_plot(result), "confusion matrices")}
<h2>Training</h2>
{_img(loss_plot(result), "loss curves")}
<h2>Backtest ({result.config.backtest.horizon_s} s signals)</h2>
{backtest_html(summary["backtest"])}
{_img(equity_plot(result), "equity curves")}
<p>Class shares of the pooled test labels (down, flat, up): {html.escape(json.dumps(pooled["class_shares"]))};
the model is {MODEL_NAME}.</p>
"""
    paths["report"].write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )
    return paths
