"""Synthetic WindowedDatasets whose labels depend on a pattern inside the window (model tests).

Rows are i.i.d. standard normal features plus two i.i.d. N(0, 1) latent series z10 and z30, each added to
a block of 8 features (``PATTERN_FEATURES`` in the order-book channel, ``LAGGED_FEATURES`` in the indicator
channel). For the window ending at row t:

* 10 s: s = mean of z10 over the last 10 rows, times √10 (≈ N(0, 1)); down when s < −FLAT_BAND, up when
  s > FLAT_BAND, else flat (≈ 45 % flat). The last row carries a tenth of s's variance, so a model has
  to read the window; the majority class scores ≈ 0.45.
* 30 s: the same rule on z30 over rows t−39 … t−30 (a pattern 30 rows back).
* 60 s: coin flips (nothing to learn).

movement_bps = 5·s (+ noise) per horizon, so the return head has something to fit too.
"""

from __future__ import annotations

import numpy as np

from ml.datasets import WindowedDataset
from ml.models.hybrid_cnn_lstm import ModelConfig
from schemas.model import WINDOW

PATTERN_FEATURES = slice(0, 8)  # order-book channel
LAGGED_FEATURES = slice(80, 88)  # indicator channel
FLAT_BAND = 0.6
T0_MS = 1_700_000_000_000

# A tiny model for tests where learning quality does not matter (a few ms per batch).
TINY = ModelConfig(
    encoder_dim=4,
    cnn_channels=(8,),
    cnn_kernel_sizes=(3,),
    lstm_hidden=8,
    attention_dim=8,
    head_hidden=16,
    dropout=0.1,
)


def _classes(s: np.ndarray) -> np.ndarray:
    return np.where(s < -FLAT_BAND, 0, np.where(s > FLAT_BAND, 2, 1)).astype(np.int64)


def _block_mean(x: np.ndarray, ends: np.ndarray, lag: int, width: int = 10) -> np.ndarray:
    idx = ends[:, None] - lag - np.arange(width)[None, :]
    return np.asarray(x[idx].mean(axis=1) * np.sqrt(width))


def pattern_dataset(
    n_samples: int, *, seed: int = 0, n_features: int = 110, random_labels: bool = False
) -> WindowedDataset:
    """``n_samples`` overlapping windows over ``n_samples + 59`` random rows (module docstring)."""
    rng = np.random.default_rng(seed)
    rows = n_samples + WINDOW - 1
    features = rng.standard_normal((rows, n_features))
    # Two latent series, each seen through N_COPIES noisy features (order-book features are correlated too).
    z10, z30 = rng.standard_normal(rows), rng.standard_normal(rows)
    features[:, PATTERN_FEATURES] += z10[:, None]
    features[:, LAGGED_FEATURES] += z30[:, None]
    features = features.astype(np.float32)
    ends = np.arange(WINDOW - 1, rows, dtype=np.int64)
    s10 = _block_mean(z10, ends, lag=0)
    s30 = _block_mean(z30, ends, lag=30)
    s60 = rng.standard_normal(n_samples)
    if random_labels:
        s10, s30 = rng.standard_normal(n_samples), rng.standard_normal(n_samples)
    signal = np.stack([s10, s30, s60], axis=1)
    movement = 5.0 * signal + 0.5 * rng.standard_normal(signal.shape)
    return WindowedDataset(
        features=features,
        ends=ends,
        direction=_classes(signal),
        movement_bps=movement,
        ts_ms=T0_MS + ends * 1000,
        symbols=np.full(n_samples, "SYNUSDT"),
        mid=np.full(n_samples, 100.0),
    )


class IdentityPreprocessor:
    """Stands in for ml.preprocessing.FeaturePreprocessor where the transform must not matter."""

    spec_hash: str | None = None

    def transform(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float32)
