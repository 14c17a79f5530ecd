"""Measurement helpers for the validation checks of docs/exchange_sim_market.md §16 (used by tests and ``bench``).

:func:`sample` drives a market and records one row of book and flow features per symbol per sampling
interval; the other functions compute the stylised facts and the predictability figures from those
arrays with numpy only (logistic regression by Newton's method, AUC by the rank statistic), so the
checks need nothing beyond the generator's own dependencies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from exchange_sim.book import BUY, SELL
from exchange_sim.market.background import ASK, BID
from exchange_sim.market.generator import SyntheticMarket

FEATURES = ("imbalance", "imbalance10", "flow", "trades", "notional", "depth_touch", "depth10", "levels")


@dataclass
class Samples:
    """Per-interval samples of one symbol: mid (ticks), spread (ticks) and book/flow features."""

    mid: list[float] = field(default_factory=list)
    spread: list[int] = field(default_factory=list)
    features: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in FEATURES})
    regime: list[str] = field(default_factory=list)

    def array(self, name: str) -> np.ndarray:
        """A feature (or ``mid``/``spread``) as a float array."""
        if name in ("mid", "spread"):
            return np.asarray(getattr(self, name), dtype=np.float64)
        return np.asarray(self.features[name], dtype=np.float64)


def sample(market: SyntheticMarket, start_ms: int, seconds: float, step_ms: int = 1000) -> dict[str, Samples]:
    """Advance ``market`` from ``start_ms`` for ``seconds`` of exchange time, sampling every ``step_ms``."""
    out = {s: Samples() for s in market.symbols}
    engine = market.engine
    if market.now is None:
        market.advance(start_ms)
    t = market.now if market.now is not None else start_ms
    steps = int(seconds * 1000 // step_ms)
    for _ in range(steps):
        t += step_ms
        flow = {s: 0.0 for s in market.symbols}
        trades = {s: 0 for s in market.symbols}
        notional = {s: 0.0 for s in market.symbols}
        for result in market.advance(t):
            for trade in result.trades:
                qty = float(trade.qty)
                flow[trade.symbol] += qty if trade.taker_side == BUY else -qty
                trades[trade.symbol] += 1
                notional[trade.symbol] += qty * float(trade.price)
        regime = market.regime()
        for symbol, rows in out.items():
            book = engine.books[symbol]
            bids, asks = book.depth(BUY, 10), book.depth(SELL, 10)
            bb, ba = bids[0][0], asks[0][0]
            qb, qa = bids[0][1], asks[0][1]
            db, da = sum(q for _, q in bids), sum(q for _, q in asks)
            rows.mid.append((bb + ba) / 2)
            rows.spread.append(ba - bb)
            f = rows.features
            f["imbalance"].append((qb - qa) / (qb + qa))
            f["imbalance10"].append((db - da) / (db + da))
            f["flow"].append(flow[symbol])
            f["trades"].append(trades[symbol])
            f["notional"].append(notional[symbol])
            depth = market.market(symbol).depth
            f["levels"].append(min(depth.occupied(BID, bb), depth.occupied(ASK, ba)))
            f["depth_touch"].append((qb + qa) / 2)
            f["depth10"].append((db + da) / 2)
            rows.regime.append(regime)
    return out


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for binary ``label`` (Mann-Whitney, ties averaged)."""
    label = label.astype(bool)
    pos, neg = int(label.sum()), int((~label).sum())
    if not pos or not neg:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    ranks[order] = np.arange(1, len(score) + 1)
    # Average the ranks of tied scores.
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for s, c in zip(start[counts > 1], counts[counts > 1], strict=True):
        ranks[order[s : s + c]] = (2 * s + c + 1) / 2
    return float((ranks[label].sum() - pos * (pos + 1) / 2) / (pos * neg))


def logistic_fit(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3, iters: int = 25) -> np.ndarray:
    """Weights (intercept first) of an L2-regularised logistic regression, by Newton's method."""
    xs = np.column_stack([np.ones(len(x)), x])
    w = np.zeros(xs.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xs @ w, -30, 30)))
        grad = xs.T @ (p - y) + ridge * w
        hess = (xs * (p * (1 - p))[:, None]).T @ xs + ridge * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def predictability(mid: np.ndarray, x: np.ndarray, horizon: int, train: float = 0.6) -> float:
    """Out-of-sample AUC for the sign of the ``horizon``-step mid change (docs/exchange_sim_market.md §16 protocol).

    Time split: train on the first ``train`` share, skip a purge gap of ``horizon`` samples, test on
    the rest; zero changes are dropped. Features are standardised with training statistics.
    """
    x = x.reshape(len(x), -1)
    n = len(mid) - horizon
    move = mid[horizon:] - mid[:n]
    x = x[:n]
    cut = int(n * train)
    tr = np.arange(0, max(cut - horizon, 0))
    te = np.arange(cut, n)
    tr, te = tr[move[tr] != 0], te[move[te] != 0]
    if len(tr) < 20 or len(te) < 20:
        return float("nan")
    mu, sd = x[tr].mean(axis=0), x[tr].std(axis=0) + 1e-12
    w = logistic_fit((x[tr] - mu) / sd, (move[tr] > 0).astype(float))
    score = np.column_stack([np.ones(len(te)), (x[te] - mu) / sd]) @ w
    return auc(score, move[te] > 0)


def excess_kurtosis(r: np.ndarray) -> float:
    """Sample excess kurtosis."""
    r = r - r.mean()
    var = float(np.mean(r * r))
    return float(np.mean(r**4) / var**2 - 3) if var > 0 else float("nan")


def autocorr(x: np.ndarray, lag: int) -> float:
    """Lag-``lag`` autocorrelation."""
    if len(x) <= lag + 2:
        return float("nan")
    x = x - x.mean()
    return float(np.dot(x[:-lag], x[lag:]) / np.dot(x, x))


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


def log_returns(mid: np.ndarray, step: int = 1) -> np.ndarray:
    """Log returns of ``mid`` over ``step`` samples."""
    m = np.log(mid[::step])
    return np.diff(m)


def share_unchanged(mid: np.ndarray) -> float:
    """Fraction of intervals in which the mid did not change (check S3)."""
    d = np.diff(mid)
    return float(np.mean(d == 0)) if len(d) else math.nan
