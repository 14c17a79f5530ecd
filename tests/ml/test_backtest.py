"""Backtest: PnL of perfect and random predictors after fees, one position at a time, the report figures."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ml.backtest import MAKER_FEE_BPS, TAKER_FEE_BPS, BacktestConfig, Trade, backtest, signals, summarise
from ml.datasets import WindowedDataset
from schemas.model import WINDOW

T0 = 1_767_225_600_000


def make_ds(
    seconds: np.ndarray,
    moves: np.ndarray,
    *,
    mids: np.ndarray | None = None,
    symbols: np.ndarray | None = None,
) -> WindowedDataset:
    """Samples at T0 + seconds with the given (n, 3) moves; the features are irrelevant to the backtest."""
    n = len(seconds)
    return WindowedDataset(
        features=np.zeros((WINDOW - 1 + n, 110), dtype=np.float32),
        ends=np.arange(WINDOW - 1, WINDOW - 1 + n),
        direction=(np.sign(moves).astype(np.int64) + 1),
        movement_bps=moves.astype(np.float64),
        ts_ms=T0 + 1000 * np.asarray(seconds, dtype=np.int64),
        symbols=np.array(["BTCUSDT"] * n) if symbols is None else symbols,
        mid=np.full(n, 100.0) if mids is None else mids,
    )


def perfect_proba(moves: np.ndarray) -> np.ndarray:
    return np.eye(3)[np.sign(moves).astype(int) + 1]


def test_perfect_predictor_earns_the_moves_minus_fees() -> None:
    rng = np.random.default_rng(0)
    n = 60
    moves = rng.normal(0, 8, (n, 3))
    moves[::7, 0] = 0.0  # flat samples: no trade
    ds = make_ds(np.arange(0, 10 * n, 10), moves)  # one sample per horizon: no overlap possible
    result = backtest(perfect_proba(moves), ds, BacktestConfig(horizon_s=10, threshold=0.0))
    traded = moves[:, 0] != 0
    assert result.n_trades == traded.sum()
    assert result.gross_pnl_bps == pytest.approx(np.abs(moves[:, 0]).sum())
    assert result.total_pnl_bps == pytest.approx(np.abs(moves[:, 0]).sum() - 2 * TAKER_FEE_BPS * traded.sum())
    assert result.total_return == pytest.approx(result.total_pnl_bps / 1e4)
    assert all(t.exit_reason == "horizon" for t in result.trades)
    assert result.n_long == (moves[:, 0] > 0).sum() and result.n_short == (moves[:, 0] < 0).sum()


def test_perfect_predictor_on_every_second_takes_only_non_overlapping_trades() -> None:
    rng = np.random.default_rng(1)
    n = 300
    moves = rng.normal(0, 5, (n, 3))
    ds = make_ds(np.arange(n), moves)
    cfg = BacktestConfig(horizon_s=30, threshold=0.0, exit_on_opposite=False, fee_bps_per_side=MAKER_FEE_BPS)
    result = backtest(perfect_proba(moves), ds, cfg)
    # reference: the first sample at or after the previous exit opens, and holds 30 s
    expected, free = [], 0
    for i in range(n):
        if i >= free:
            expected.append(abs(moves[i, 1]))
            free = i + 30
    assert result.n_trades == len(expected)
    assert result.total_pnl_bps == pytest.approx(sum(expected) - 2 * MAKER_FEE_BPS * len(expected))
    assert result.hit_rate == pytest.approx(np.mean(np.array(expected) > 2 * MAKER_FEE_BPS))


def test_fees_make_a_coin_flip_lose() -> None:
    rng = np.random.default_rng(2)
    n = 20_000
    moves = rng.normal(0, 4, (n, 3))
    ds = make_ds(np.arange(0, 10 * n, 10), moves)
    proba = rng.dirichlet([1, 1, 1], size=(n, 3))
    result = backtest(proba, ds, BacktestConfig(horizon_s=10, threshold=0.1))
    assert result.n_trades > 5000
    assert abs(result.gross_pnl_bps / result.n_trades) < 0.3  # no edge before costs
    assert result.total_pnl_bps < 0
    assert result.mean_trade_bps == pytest.approx(-2 * TAKER_FEE_BPS, abs=0.3)
    assert result.sharpe_per_trade < 0 and result.sharpe_annualised < result.sharpe_per_trade
    assert result.max_drawdown_bps > 0.9 * -result.total_pnl_bps


def test_one_position_at_a_time_per_symbol() -> None:
    n = 100
    symbols = np.array(["BTCUSDT"] * n + ["ETHUSDT"] * n)
    seconds = np.concatenate([np.arange(n), np.arange(n)])
    moves = np.ones((2 * n, 3))
    ds = make_ds(seconds, moves, symbols=symbols)
    always_long = np.tile([0.0, 0.0, 1.0], (2 * n, 3, 1))
    result = backtest(always_long, ds, BacktestConfig(horizon_s=10, threshold=0.5))
    assert result.n_trades == 2 * 10  # entries at 0, 10, …, 90 s on each symbol
    for symbol in ("BTCUSDT", "ETHUSDT"):
        mine = sorted((t for t in result.trades if t.symbol == symbol), key=lambda t: t.entry_ts_ms)
        assert [(t.entry_ts_ms - T0) // 1000 for t in mine] == list(range(0, 100, 10))
        assert all(b.entry_ts_ms >= a.exit_ts_ms for a, b in itertools.pairwise(mine))
    assert result.turnover == 2 * result.n_trades
    assert result.span_days == pytest.approx((99 + 10) / 86_400)


def test_an_opposite_signal_closes_at_the_mids_and_reverses() -> None:
    mids = np.array([100.0, 100.5, 101.0, 102.0, 101.0, 101.0])
    moves = np.array([[9.0] * 3, [0.0] * 3, [0.0] * 3, [-30.0] * 3, [0.0] * 3, [0.0] * 3])
    ds = make_ds(np.arange(6), moves, mids=mids)
    proba = np.tile([0.2, 0.6, 0.2], (6, 3, 1))
    proba[0] = [0.1, 0.1, 0.8]  # long at 0 s
    proba[3] = [0.8, 0.1, 0.1]  # short signal at 3 s: exit the long, open the short
    result = backtest(proba, ds, BacktestConfig(horizon_s=10, threshold=0.2, fee_bps_per_side=0.0))
    first, second = sorted(result.trades, key=lambda t: t.entry_ts_ms)
    assert (first.side, first.exit_reason, first.exit_ts_ms) == (1, "opposite", T0 + 3000)
    assert first.gross_bps == pytest.approx(1e4 * math.log(102.0 / 100.0))
    assert (second.side, second.exit_reason, second.exit_ts_ms) == (-1, "horizon", T0 + 13_000)
    assert second.gross_bps == pytest.approx(30.0)  # from the label of the 3 s sample


def test_signal_thresholds() -> None:
    proba = np.array([[0.2, 0.3, 0.5], [0.45, 0.1, 0.45], [0.5, 0.3, 0.2], [0.3, 0.05, 0.65]])
    assert signals(proba, 0.2).tolist() == [1, 0, -1, 1]
    assert signals(proba, 0.32).tolist() == [0, 0, 0, 1]
    assert signals(proba, 0.0, min_confidence=0.6).tolist() == [0, 0, 0, 1]
    with pytest.raises(ValueError, match="threshold"):
        BacktestConfig(threshold=1.5)
    with pytest.raises(ValueError, match="fee"):
        BacktestConfig(fee_bps_per_side=-1)


def test_report_figures_of_known_trades() -> None:
    def trade(i: int, net: float) -> Trade:
        return Trade("BTCUSDT", 1, T0 + i * 1000, T0 + i * 1000 + 10_000, net + 11.0, 11.0, net, "horizon")

    nets = [10.0, -20.0, 5.0, -5.0, 30.0]
    r = summarise([trade(i * 10, x) for i, x in enumerate(nets)], BacktestConfig(), span_ms=86_400_000)
    assert r.total_pnl_bps == pytest.approx(20.0)
    assert r.hit_rate == pytest.approx(3 / 5)
    assert r.max_drawdown_bps == pytest.approx(20.0)  # cumulative 10, −10, −5, −10, 20: peak 10, trough −10
    sharpe = np.mean(nets) / np.std(nets, ddof=1)
    assert r.sharpe_per_trade == pytest.approx(sharpe)
    assert r.sharpe_annualised == pytest.approx(sharpe * math.sqrt(5 * 365))
    assert r.turnover == 10 and r.turnover_per_day == pytest.approx(10)
    assert r.summary()["n_trades"] == 5
    empty = summarise([], BacktestConfig(), span_ms=0)
    assert (empty.n_trades, empty.total_pnl_bps, empty.sharpe_per_trade, empty.max_drawdown_bps) == (
        0,
        0,
        0,
        0,
    )


def test_bad_inputs_raise() -> None:
    ds = make_ds(np.arange(5), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"must be \(5, 3, 3\)"):
        backtest(np.zeros((4, 3, 3)), ds)
    with pytest.raises(ValueError, match="horizon 20s"):
        backtest(np.full((5, 3, 3), 1 / 3), ds, BacktestConfig(horizon_s=20))
    with pytest.raises(ValueError, match="finite"):
        backtest(np.full((5, 3, 3), np.nan), ds)
