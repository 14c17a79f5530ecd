"""PNG plots a person would rather look at than read: the training loss per epoch, the confusion matrix of
each horizon, the backtest's equity curve. matplotlib with the Agg backend (no display), one figure per
call, written atomically; the Dagster assets link the files from their metadata.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from schemas.model import CLASS_NAMES


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def plot_loss_curve(
    train_loss: Sequence[float], val_loss: Sequence[float], best_epoch: int, path: Path
) -> Path:
    """Training and validation loss per epoch, the restored (best) epoch marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = np.arange(1, len(train_loss) + 1)
    ax.plot(epochs, train_loss, marker="o", label="train")
    ax.plot(epochs, val_loss, marker="o", label="validation")
    if 0 <= best_epoch < len(val_loss):
        ax.axvline(best_epoch + 1, color="grey", linestyle="--", label=f"best epoch {best_epoch + 1}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("multi-task loss")
    ax.set_title("Training loss per epoch")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion(matrices: Mapping[str, Sequence[Sequence[int]]], path: Path) -> Path:
    """One panel per horizon: counts of [true class][predicted class], with row shares as colour."""
    plt = _pyplot()
    n = max(1, len(matrices))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    for ax, (horizon, matrix) in zip(axes[0], matrices.items(), strict=False):
        counts = np.asarray(matrix, dtype=np.float64)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(shares, vmin=0, vmax=1, cmap="Blues")
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                colour = "white" if shares[i, j] > 0.6 else "black"
                ax.text(
                    j, i, f"{int(counts[i, j])}\n{shares[i, j]:.0%}", ha="center", va="center", color=colour
                )
        ax.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES)
        ax.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{horizon} horizon")
    fig.suptitle("Confusion matrix on the test fold")
    return _save(fig, path)


def plot_equity(exit_ms: Sequence[int], cumulative_bps: Sequence[float], path: Path, *, title: str) -> Path:
    """Cumulative net PnL [bps] after fees at each trade's exit."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if len(exit_ms):
        times = [datetime.fromtimestamp(t / 1000, UTC) for t in exit_ms]
        ax.step(times, cumulative_bps, where="post")
        ax.axhline(0, color="grey", linewidth=0.8)
        fig.autofmt_xdate()
    else:
        ax.text(0.5, 0.5, "no trades", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("cumulative net PnL [bps]")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)
