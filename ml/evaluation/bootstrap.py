"""Block-bootstrap confidence intervals for the per-horizon metrics, and for the difference of two models.

One-second rows are strongly autocorrelated (overlapping windows, overlapping label horizons, volatility
clustering), so resampling single samples would give intervals far too narrow. Samples are grouped into
**time blocks** of ``block_ms`` within each independent series (a recording's test block of one fold, all
symbols together: the symbols share a market factor). A block must be at least the longest horizon (a
label at t and one at t + 60 s share no future move only when they are 60 s apart); the default,
:func:`default_block_ms`, is twice that: on a synthetic check with hits correlated over tens of seconds
(tests/ml/evaluation/test_bootstrap.py) blocks of one horizon covered a known effect only 80-87 % of
the time at a nominal 95 %, blocks of two 86-93 %, and one-sample blocks claimed an absent effect in
a third of the runs. A resample draws, within each
series, as many blocks as it has, with replacement (a stratified, non-overlapping block bootstrap), so
every series keeps its weight in a pooled estimate.

Every metric of :mod:`ml.evaluation.metrics` is a function of per-block sums (counts, hits, log-loss
sums, the 3×3 confusion matrix, the calibration bins), so a resample is one matrix product of block
counts with block sums and ``n_resamples`` (default 1000) resamples cost milliseconds. Intervals are
percentile intervals at ``confidence`` (default 95 %). Paired differences (model A − model B on the same
samples) use the same resamples for both, which is what a comparison needs: two models' marginal
intervals overlap far more often than their difference is uncertain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.evaluation.metrics import ECE_BINS, PROBA_CLIP, clip_probabilities, ece_from_bins
from schemas.model import N_CLASSES

BOOTSTRAP_METRICS = ("accuracy", "macro_f1", "log_loss", "ece")
DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95

# Column layout of the per-sample statistics whose block sums determine every metric.
_COUNT, _HIT, _NLL = 0, 1, 2
_CONF = slice(3, 3 + N_CLASSES * N_CLASSES)
_BINS = slice(_CONF.stop, _CONF.stop + 3 * ECE_BINS)
_WIDTH = _BINS.stop


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval [low, high]."""

    value: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0 (for differences)."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def default_block_ms(horizons_s: tuple[int, ...] | list[int]) -> int:
    """Twice the longest horizon, in ms (module docstring)."""
    return 2 * max(horizons_s) * 1000


def time_block_ids(series: np.ndarray, ts_ms: np.ndarray, block_ms: int) -> np.ndarray:
    """Block id per sample: consecutive ``block_ms`` spans of time within each series (any labels)."""
    if block_ms <= 0:
        raise ValueError(f"block_ms must be > 0, got {block_ms}")
    s = np.asarray(series)
    ts = np.asarray(ts_ms, dtype=np.int64)
    if s.shape != ts.shape:
        raise ValueError(f"series and ts_ms differ in shape: {s.shape} vs {ts.shape}")
    _, sid = np.unique(s, return_inverse=True)
    out = np.empty(len(ts), dtype=np.int64)
    offset = 0
    for k in range(int(sid.max()) + 1 if len(sid) else 0):
        m = sid == k
        local = (ts[m] - ts[m].min()) // block_ms
        _, local_id = np.unique(local, return_inverse=True)
        out[m] = local_id + offset
        offset += int(local_id.max()) + 1
    return out


def sample_statistics(proba_h: np.ndarray, y_h: np.ndarray) -> np.ndarray:
    """(n, width) per-sample columns whose sums give every metric of one horizon (see the module)."""
    p = clip_probabilities(proba_h)
    y = np.asarray(y_h, dtype=np.int64)
    n = len(y)
    pred = p.argmax(axis=1)
    top = p.max(axis=1)
    out = np.zeros((n, _WIDTH))
    out[:, _COUNT] = 1.0
    out[:, _HIT] = pred == y
    out[:, _NLL] = -np.log(np.maximum(p[np.arange(n), y], PROBA_CLIP))
    out[np.arange(n), _CONF.start + y * N_CLASSES + pred] = 1.0
    b = np.minimum((top * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    out[np.arange(n), _BINS.start + 3 * b] = 1.0
    out[np.arange(n), _BINS.start + 3 * b + 1] = top
    out[np.arange(n), _BINS.start + 3 * b + 2] = pred == y
    return out


def metrics_from_sums(sums: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric from (…, width) summed statistics (vectorised over leading axes)."""
    count = sums[..., _COUNT]
    conf = sums[..., _CONF].reshape(*sums.shape[:-1], N_CLASSES, N_CLASSES)  # [true, predicted]
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    true_n, pred_n = conf.sum(axis=-1), conf.sum(axis=-2)
    denom = true_n + pred_n
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-300), 0.0)
    present = denom > 0
    macro = (f1 * present).sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)
    bins = sums[..., _BINS].reshape(*sums.shape[:-1], ECE_BINS, 3)
    safe = np.maximum(count, 1e-300)
    return {
        "accuracy": sums[..., _HIT] / safe,
        "macro_f1": macro,
        "log_loss": sums[..., _NLL] / safe,
        "ece": ece_from_bins(bins),
    }


class BlockBootstrap:
    """Stratified block bootstrap over fixed blocks (module docstring).

    ``block_ids`` (n,) names each sample's block; ``strata`` (n,) its independent series (default: one).
    The resample weights are drawn once, so every model and every metric evaluated with one instance
    share the same resamples (paired comparisons).
    """

    def __init__(
        self,
        block_ids: np.ndarray,
        *,
        strata: np.ndarray | None = None,
        n_resamples: int = DEFAULT_RESAMPLES,
        confidence: float = DEFAULT_CONFIDENCE,
        seed: int = 0,
    ) -> None:
        if n_resamples < 10:
            raise ValueError(f"n_resamples must be ≥ 10, got {n_resamples}")
        if not 0.5 <= confidence < 1:
            raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
        blocks = np.asarray(block_ids)
        if blocks.ndim != 1 or not len(blocks):
            raise ValueError("block_ids must be a non-empty 1-D array")
        uniq, self.inverse = np.unique(blocks, return_inverse=True)
        self.n = len(blocks)
        self.n_blocks = len(uniq)
        self.confidence = confidence
        self.n_resamples = n_resamples
        # stratum of each block (a block lies in one stratum: its first sample's)
        strat = (
            np.zeros(self.n, dtype=np.int64) if strata is None else np.unique(strata, return_inverse=True)[1]
        )
        if len(strat) != self.n:
            raise ValueError(f"strata has {len(strat)} entries for {self.n} samples")
        block_stratum = np.zeros(self.n_blocks, dtype=np.int64)
        block_stratum[self.inverse] = strat
        rng = np.random.default_rng(seed)
        weights = np.zeros((n_resamples, self.n_blocks))
        for s in np.unique(block_stratum):
            members = np.flatnonzero(block_stratum == s)
            weights[:, members] = rng.multinomial(
                len(members), np.full(len(members), 1 / len(members)), n_resamples
            )
        self.weights = weights
        self.strata_blocks = {int(s): int((block_stratum == s).sum()) for s in np.unique(block_stratum)}

    def _block_sums(self, stats: np.ndarray) -> np.ndarray:
        sums = np.zeros((self.n_blocks, stats.shape[1]))
        np.add.at(sums, self.inverse, stats)
        return sums

    def _check(self, proba_h: np.ndarray, y_h: np.ndarray) -> None:
        if len(proba_h) != self.n or len(y_h) != self.n:
            raise ValueError(
                f"bootstrap built for {self.n} samples, got {len(proba_h)} probabilities and {len(y_h)} labels"
            )

    def distribution(
        self, proba_h: np.ndarray, y_h: np.ndarray
    ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Point metrics and their (n_resamples,) bootstrap distributions for one horizon."""
        self._check(proba_h, y_h)
        sums = self._block_sums(sample_statistics(proba_h, y_h))
        point = {k: float(v) for k, v in metrics_from_sums(sums.sum(axis=0)).items()}
        return point, metrics_from_sums(self.weights @ sums)

    def _interval(self, value: float, draws: np.ndarray) -> Interval:
        alpha = (1 - self.confidence) / 2
        low, high = np.quantile(draws, [alpha, 1 - alpha])
        return Interval(value, float(low), float(high))

    def intervals(self, proba_h: np.ndarray, y_h: np.ndarray) -> dict[str, Interval]:
        """Every metric of one horizon with its interval."""
        point, draws = self.distribution(proba_h, y_h)
        return {m: self._interval(point[m], draws[m]) for m in BOOTSTRAP_METRICS}

    def difference(self, proba_a: np.ndarray, proba_b: np.ndarray, y_h: np.ndarray) -> dict[str, Interval]:
        """Metric of A − metric of B on the same samples and resamples, with the interval of the difference."""
        pa, da = self.distribution(proba_a, y_h)
        pb, db = self.distribution(proba_b, y_h)
        return {m: self._interval(pa[m] - pb[m], da[m] - db[m]) for m in BOOTSTRAP_METRICS}

    def describe(self) -> dict[str, Any]:
        return {
            "n_samples": self.n,
            "n_blocks": self.n_blocks,
            "n_series": len(self.strata_blocks),
            "n_resamples": self.n_resamples,
            "confidence": self.confidence,
        }


def gain(diff: Mapping[str, Interval], metric: str) -> Interval:
    """A difference A − B turned into a gain of A (positive = A better): log-loss and ECE flip sign."""
    d = diff[metric]
    if metric in ("log_loss", "ece"):
        return Interval(-d.value, -d.high, -d.low)
    return d
