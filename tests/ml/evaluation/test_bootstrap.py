"""Block-bootstrap intervals: they equal the plain metrics at the point, cover a known effect on
autocorrelated data, do not claim one where there is none, and would without the blocks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter
from scipy.stats import norm

from ml.evaluation import horizon_metrics
from ml.evaluation.bootstrap import BlockBootstrap, Interval, gain, time_block_ids

N = 7200  # two hours of one-second samples
RHO = 0.95  # hit autocorrelation from sample to sample: runs of tens of seconds, like overlapping windows
BLOCK_MS = 120_000  # the protocol's default: twice the longest horizon


def correlated_hits(rng: np.random.Generator, p: float, n: int = N) -> np.ndarray:
    """Booleans with P(hit) = p whose latent driver is a stationary AR(1) with coefficient RHO."""
    noise = rng.standard_normal(n) * np.sqrt(1 - RHO**2)
    noise[0] = rng.standard_normal()
    return np.asarray(lfilter([1.0], [1.0, -RHO], noise) < norm.ppf(p))


def as_proba(hits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, 3) probabilities whose argmax is the truth where hit, the next class elsewhere."""
    pred = np.where(hits, y, (y + 1) % 3)
    p = np.full((len(y), 3), 0.2)
    p[np.arange(len(y)), pred] = 0.6
    return p


def test_point_values_are_the_plain_metrics() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1.0, 2.0, 1.0], size=(500, 1))
    y = rng.choice(3, size=(500, 1))
    boot = BlockBootstrap(time_block_ids(np.zeros(500), np.arange(500) * 1000, 60_000), n_resamples=200)
    ivs = boot.intervals(proba[:, 0], y[:, 0])
    plain = horizon_metrics(proba, y, (10,))[0]
    for metric in ("accuracy", "macro_f1", "log_loss", "ece"):
        assert ivs[metric].value == pytest.approx(getattr(plain, metric), abs=1e-12)
        assert ivs[metric].low <= ivs[metric].value <= ivs[metric].high


def _coverage(delta: float, block_ms: int, reps: int = 50) -> tuple[float, float]:
    """Share of replications whose accuracy-gain interval covers ``delta``, and share that exclude 0."""
    rng = np.random.default_rng(42)
    ts = np.arange(N) * 1000
    boot = BlockBootstrap(time_block_ids(np.zeros(N), ts, block_ms), n_resamples=300, seed=1)
    covered = claimed = 0
    for _ in range(reps):
        y = rng.integers(0, 3, N)
        a = as_proba(correlated_hits(rng, 0.5 + delta), y)
        b = as_proba(correlated_hits(rng, 0.5), y)
        g = gain(boot.difference(a, b, y), "accuracy")
        covered += g.low <= delta <= g.high
        claimed += g.excludes_zero()
    return covered / reps, claimed / reps


def test_intervals_cover_a_known_effect() -> None:
    coverage, detected = _coverage(delta=0.1, block_ms=BLOCK_MS)
    assert coverage >= 0.85  # nominal 95 %
    assert detected >= 0.6  # and the effect is usually seen


def test_intervals_claim_no_effect_where_there_is_none() -> None:
    coverage, claimed = _coverage(delta=0.0, block_ms=BLOCK_MS)
    assert coverage >= 0.85
    assert claimed <= 0.15  # nominal 5 %


def test_without_blocks_the_same_data_claims_effects_that_are_not_there() -> None:
    _, claimed = _coverage(delta=0.0, block_ms=1000)  # one sample per block: the i.i.d. bootstrap
    assert claimed >= 0.3


def test_gain_flips_losses() -> None:
    diff = {"log_loss": Interval(-0.1, -0.15, -0.05), "macro_f1": Interval(0.02, -0.01, 0.05)}
    assert gain(diff, "log_loss") == Interval(0.1, 0.05, 0.15)
    assert gain(diff, "macro_f1") == diff["macro_f1"]


def test_blocks_follow_time_within_each_series() -> None:
    series = np.array(["a"] * 4 + ["b"] * 3)
    ts = np.array([0, 30_000, 60_000, 130_000, 0, 59_000, 61_000])
    assert time_block_ids(series, ts, 60_000).tolist() == [0, 0, 1, 2, 3, 3, 4]
    with pytest.raises(ValueError, match="block_ms"):
        time_block_ids(series, ts, 0)
    with pytest.raises(ValueError, match="built for"):
        BlockBootstrap(np.zeros(5)).intervals(np.full((4, 3), 1 / 3), np.zeros(4, dtype=int))
