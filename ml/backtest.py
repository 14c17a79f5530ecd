"""A cost-aware backtest of a model's signals on the test fold.

Per sample (decision time t, one symbol) the probabilities of one horizon h give a signal:
long when p_up − p_down > ``threshold``, short when p_down − p_up > ``threshold``, else none; with
``min_confidence`` the chosen side's probability must also reach it. Per symbol, in time order:

* one position at a time: a signal while a position is open is ignored, except an **opposite** signal, which
  closes the position at that sample (and, being a signal, may open the reverse one at once);
* otherwise a position opened at t is closed at t + h (exit "horizon");
* a position is opened only at a sample whose ts is at or after the previous exit (no overlap).

PnL of a trade in bps of notional, gross = side · 1e4·ln(exit mid / entry mid): for a horizon exit this is
the label's ``movement_bps`` of the entry sample (the mid of the last row ≤ t + h, the same as-of rule), for an
early exit it is computed from the two samples' mids. Decisions use only the probabilities at t and the exit
time known at entry, so nothing after t enters a decision (the labels give only the fill price at the exit).
Net = gross − 2 · fee per side (taker 5.5 bps by default; maker 2 bps is ``MAKER_FEE_BPS``). bps are used
as float64 returns here: this is research accounting, not money in orders.

Report:

* ``total_pnl_bps``: the sum of net trade returns [bps of the position notional]; ``total_return`` the same
  as a fraction (/1e4), i.e. the simple sum for a constant position size, not compounded;
* ``sharpe_per_trade`` = mean/std (ddof 1) of the net trade returns; ``sharpe_annualised`` =
  sharpe_per_trade · √(trades per year), trades per year = n_trades over the span of the test period
  (first decision to last exit) scaled to 365 days — crypto trades every day; the trades of all symbols are
  counted as one stream, so it measures the portfolio of per-symbol unit positions;
* ``hit_rate``: share of trades with net > 0 (after fees);
* ``turnover``: notional traded over the position size, 2 per round trip; ``turnover_per_day`` the same per
  day of the test span;
* ``max_drawdown_bps``: largest fall of the cumulative net PnL (trades ordered by exit time) from its
  running peak, the peak starting at 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.datasets import WindowedDataset

TAKER_FEE_BPS = 5.5
MAKER_FEE_BPS = 2.0
MS_PER_DAY = 86_400_000
DAYS_PER_YEAR = 365.0


@dataclass(frozen=True)
class BacktestConfig:
    """Which horizon to trade, the signal thresholds and the fee per side [bps]."""

    horizon_s: int = 10
    threshold: float = 0.1
    min_confidence: float = 0.0
    fee_bps_per_side: float = TAKER_FEE_BPS
    exit_on_opposite: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"threshold on p_up − p_down must be in [0, 1), got {self.threshold}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if not (np.isfinite(self.fee_bps_per_side) and self.fee_bps_per_side >= 0):
            raise ValueError(f"fee_bps_per_side must be finite and >= 0, got {self.fee_bps_per_side}")


@dataclass(frozen=True)
class Trade:
    symbol: str
    side: int  # +1 long, −1 short
    entry_ts_ms: int
    exit_ts_ms: int
    gross_bps: float
    fee_bps: float
    net_bps: float
    exit_reason: str  # "horizon" or "opposite"


@dataclass(frozen=True)
class BacktestResult:
    config: BacktestConfig
    trades: list[Trade] = field(repr=False)
    n_trades: int
    n_long: int
    n_short: int
    total_pnl_bps: float
    total_return: float
    gross_pnl_bps: float
    fees_bps: float
    mean_trade_bps: float
    sharpe_per_trade: float
    sharpe_annualised: float
    hit_rate: float
    turnover: float
    turnover_per_day: float
    max_drawdown_bps: float
    span_days: float

    def summary(self) -> dict[str, Any]:
        """The figures (no trade list), JSON-able, for manifests and reports."""
        return {
            "horizon_s": self.config.horizon_s,
            "threshold": self.config.threshold,
            "fee_bps_per_side": self.config.fee_bps_per_side,
            "n_trades": self.n_trades,
            "n_long": self.n_long,
            "n_short": self.n_short,
            "total_pnl_bps": self.total_pnl_bps,
            "total_return": self.total_return,
            "gross_pnl_bps": self.gross_pnl_bps,
            "fees_bps": self.fees_bps,
            "mean_trade_bps": self.mean_trade_bps,
            "sharpe_per_trade": self.sharpe_per_trade,
            "sharpe_annualised": self.sharpe_annualised,
            "hit_rate": self.hit_rate,
            "turnover": self.turnover,
            "turnover_per_day": self.turnover_per_day,
            "max_drawdown_bps": self.max_drawdown_bps,
            "span_days": self.span_days,
        }


def signals(proba_h: np.ndarray, threshold: float, min_confidence: float = 0.0) -> np.ndarray:
    """+1 / −1 / 0 per sample from the (n, 3) probabilities of one horizon (module docstring)."""
    p = np.asarray(proba_h, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"probabilities of one horizon must be (n, 3), got {p.shape}")
    edge = p[:, 2] - p[:, 0]
    long = (edge > threshold) & (p[:, 2] >= min_confidence)
    short = (-edge > threshold) & (p[:, 0] >= min_confidence)
    return np.where(long, 1, np.where(short, -1, 0)).astype(np.int64)


def _simulate_symbol(
    symbol: str,
    ts: np.ndarray,
    mid: np.ndarray,
    move: np.ndarray,
    signal: np.ndarray,
    horizon_ms: int,
    cfg: BacktestConfig,
) -> list[Trade]:
    trades: list[Trade] = []
    fee = 2 * cfg.fee_bps_per_side
    side, entry, free_at = 0, -1, int(ts[0]) if len(ts) else 0  # free_at: earliest ts a new entry may use
    for i in range(len(ts)):
        t = int(ts[i])
        if side and t >= int(ts[entry]) + horizon_ms:  # the horizon exit came before this sample
            gross = side * float(move[entry])
            trades.append(
                Trade(
                    symbol,
                    side,
                    int(ts[entry]),
                    int(ts[entry]) + horizon_ms,
                    gross,
                    fee,
                    gross - fee,
                    "horizon",
                )
            )
            free_at, side = int(ts[entry]) + horizon_ms, 0
        s = int(signal[i])
        if side and cfg.exit_on_opposite and s == -side:
            gross = side * 1e4 * float(np.log(mid[i] / mid[entry]))
            trades.append(Trade(symbol, side, int(ts[entry]), t, gross, fee, gross - fee, "opposite"))
            free_at, side = t, 0
        if not side and s and t >= free_at:
            side, entry = s, i
    if side:  # the last position always ends at its horizon: its label says where
        gross = side * float(move[entry])
        trades.append(
            Trade(
                symbol, side, int(ts[entry]), int(ts[entry]) + horizon_ms, gross, fee, gross - fee, "horizon"
            )
        )
    return trades


def backtest(proba: np.ndarray, ds: WindowedDataset, config: BacktestConfig | None = None) -> BacktestResult:
    """Backtest the (n, H, 3) probabilities of the samples of ``ds`` (e.g. the test fold), per symbol."""
    cfg = config or BacktestConfig()
    p = np.asarray(proba, dtype=np.float64)
    if p.shape != (len(ds), len(ds.horizons_s), 3):
        raise ValueError(
            f"probabilities must be ({len(ds)}, {len(ds.horizons_s)}, 3) for this dataset, got {p.shape}"
        )
    if cfg.horizon_s not in ds.horizons_s:
        raise ValueError(f"horizon {cfg.horizon_s}s is not one of the dataset's {ds.horizons_s}")
    if not np.isfinite(p).all():
        raise ValueError("probabilities must be finite")
    k = ds.horizons_s.index(cfg.horizon_s)
    sig = signals(p[:, k, :], cfg.threshold, cfg.min_confidence)
    horizon_ms = cfg.horizon_s * 1000
    trades: list[Trade] = []
    for symbol in np.unique(ds.symbols):
        idx = np.flatnonzero(ds.symbols == symbol)
        idx = idx[np.argsort(ds.ts_ms[idx], kind="stable")]
        ts = ds.ts_ms[idx]
        if len(ts) > 1 and not (np.diff(ts) > 0).all():
            raise ValueError(f"samples of {symbol} have duplicate ts values")
        trades += _simulate_symbol(
            str(symbol), ts, ds.mid[idx], ds.movement_bps[idx, k], sig[idx], horizon_ms, cfg
        )
    span_ms = (int(ds.ts_ms.max()) + horizon_ms - int(ds.ts_ms.min())) if len(ds) else 0
    return summarise(trades, cfg, span_ms)


def summarise(trades: list[Trade], cfg: BacktestConfig, span_ms: int) -> BacktestResult:
    """The report figures of a list of trades over a test span of ``span_ms`` (module docstring)."""
    trades = sorted(trades, key=lambda tr: (tr.exit_ts_ms, tr.entry_ts_ms, tr.symbol))
    net = np.array([t.net_bps for t in trades], dtype=np.float64)
    gross = np.array([t.gross_bps for t in trades], dtype=np.float64)
    n = len(trades)
    span_days = span_ms / MS_PER_DAY
    sharpe = float(net.mean() / net.std(ddof=1)) if n >= 2 and net.std(ddof=1) > 0 else 0.0
    per_year = n / (span_days / DAYS_PER_YEAR) if span_days > 0 else 0.0
    curve = np.concatenate([[0.0], np.cumsum(net)])
    drawdown = float((np.maximum.accumulate(curve) - curve).max())
    return BacktestResult(
        config=cfg,
        trades=trades,
        n_trades=n,
        n_long=sum(t.side > 0 for t in trades),
        n_short=sum(t.side < 0 for t in trades),
        total_pnl_bps=float(net.sum()),
        total_return=float(net.sum() / 1e4),
        gross_pnl_bps=float(gross.sum()),
        fees_bps=float(sum(t.fee_bps for t in trades)),
        mean_trade_bps=float(net.mean()) if n else 0.0,
        sharpe_per_trade=sharpe,
        sharpe_annualised=float(sharpe * np.sqrt(per_year)),
        hit_rate=float((net > 0).mean()) if n else 0.0,
        turnover=2.0 * n,
        turnover_per_day=2.0 * n / span_days if span_days > 0 else 0.0,
        max_drawdown_bps=drawdown,
        span_days=span_days,
    )
