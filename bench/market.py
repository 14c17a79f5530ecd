"""Benchmark of the synthetic market generator: speed against the ladder baseline, and stylised facts.

``run()`` returns a JSON-able dict (about two minutes on one core):

* ``speed``: simulated seconds per CPU second (x real time on one core) for BTC, ETH and SOL together at
  ``speed = max``, stepped every 100 ms and every 10 ms (the paper exchange's driver step), for
  :class:`~exchange_sim.market.SyntheticMarket` and for the scripted :class:`~exchange_sim.liquidity.LadderMarket`
  in the same process, and their ratio (check F1 asks for at least 20x real time). The ladder is the
  baseline because it is the paper exchange's other market source, a light seeded ladder for tests and
  quick runs: the ratio says what the synthetic market's realism costs;
* ``facts``: the checks of docs/exchange_sim_market.md §16 measured on one multi-hour run of the three symbols with
  regime switching (S1, S2, S3, S6, S8, P1–P4, R1 shares), a ten-minute calm run for S7 (book changes
  per 100 ms), and a latent-only day for S4 (volatility clustering needs far more than a few hours).
  These are statistics of the market, not costs: they are compared with their targets in
  docs/exchange_sim_market.md §16, not with a baseline, and are left out of the report's table (and of
  ``run(quick=True)``, whose runs would be too short for them).

Run it with ``.venv/bin/python -c "from bench import market; print(market.run())"``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import numpy as np
from numpy.random import PCG64, Generator

from bench.report import Figure, Section
from exchange_sim.accounts import AccountRegistry
from exchange_sim.book import BUY, SELL
from exchange_sim.events import IdFactory
from exchange_sim.instruments import DEFAULT_INSTRUMENTS
from exchange_sim.liquidity import LadderMarket
from exchange_sim.market import ManipulationParams, MarketConfig, SyntheticMarket
from exchange_sim.market.latent import Latent, MarketFactor, RegimeChain
from exchange_sim.market.params import REGIMES
from exchange_sim.matching import MatchingEngine
from testkit import market_checks as C

T0 = 1_767_225_600_000
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
TAKER_ROUND_TRIP_BP = 11.0  # 2 x 0.055%


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def _engine(clock: _Clock) -> MatchingEngine:
    registry = AccountRegistry(dict(DEFAULT_INSTRUMENTS), clock)
    return MatchingEngine(registry, clock=clock, ids=IdFactory(seed=1))


def _rate(source: Any, clock: _Clock, seconds: float, step_ms: int) -> float:
    """Simulated seconds per CPU second of ``source`` driven like the venue does (steps of ``step_ms``).

    CPU time of this process (``time.process_time``), not wall time: on a shared machine other
    processes' load would otherwise show up as this one's slowness.
    """
    source.advance(clock.now)
    start = time.process_time()
    for _ in range(int(seconds * 1000 // step_ms)):
        clock.now += step_ms
        source.advance(clock.now)
    return seconds / (time.process_time() - start)


def speed(seconds: float = 600.0, step_ms: int = 100) -> dict[str, float]:
    """F1: the generator's speed for three symbols and the LadderMarket baseline in the same process.

    Stepped every ``step_ms`` (100 ms, the convention of earlier figures) and every 10 ms, the paper
    exchange driver's step; simulated seconds per CPU second, i.e. x real time on one core.
    """
    clock = _Clock()
    synthetic = _rate(SyntheticMarket(_engine(clock), SYMBOLS, seed=42), clock, seconds, step_ms)
    clock = _Clock()
    driver = _rate(SyntheticMarket(_engine(clock), SYMBOLS, seed=42), clock, seconds / 2, 10)
    clock = _Clock()
    mids = {"BTCUSDT": Decimal(64000), "ETHUSDT": Decimal(3400), "SOLUSDT": Decimal(150)}
    ladder = _rate(LadderMarket(_engine(clock), seed=42, mids=mids), clock, seconds / 4, step_ms)
    clock = _Clock()
    ladder10 = _rate(LadderMarket(_engine(clock), seed=42, mids=mids), clock, seconds / 8, 10)
    return {
        "synthetic_x_realtime": round(synthetic, 1),
        "synthetic_x_realtime_10ms_steps": round(driver, 1),
        "ladder_x_realtime": round(ladder, 1),
        "ladder_x_realtime_10ms_steps": round(ladder10, 1),
        "ratio_synthetic_over_ladder": round(synthetic / ladder, 3),
        "simulated_seconds": seconds,
    }


def _p4(mid: np.ndarray, x: np.ndarray, horizon: int) -> float:
    """Mean mid move (bp) in the predicted direction over the top and bottom score deciles of the test split."""
    n = len(mid) - horizon
    move = (mid[horizon:] - mid[:n]) / mid[:n] * 1e4
    x = x.reshape(n + horizon, -1)[:n]
    cut = int(n * 0.6)
    tr, te = np.arange(0, cut - horizon), np.arange(cut, n)
    tr = tr[move[tr] != 0]
    mu, sd = x[tr].mean(axis=0), x[tr].std(axis=0) + 1e-12
    w = C.logistic_fit((x[tr] - mu) / sd, (move[tr] > 0).astype(float))
    score = np.column_stack([np.ones(len(te)), (x[te] - mu) / sd]) @ w
    lo, hi = np.quantile(score, [0.1, 0.9])
    pick = (score >= hi) | (score <= lo)
    return float(np.mean(np.sign(score[pick] - np.median(score)) * move[te][pick]))


def _symbol_facts(market: SyntheticMarket, symbol: str, s: C.Samples) -> dict[str, Any]:
    mk = market.market(symbol)
    mid = s.array("mid")
    spread = s.array("spread")
    imbalance = s.array("imbalance")
    # "All book and flow features" of P2: the directional ones. Raw depth levels are left out: they
    # move with the regime, and a linear model fitted on one stretch turns them into spurious trends.
    every = np.column_stack([s.array(k) for k in ("imbalance", "imbalance10", "flow")])
    past10 = np.concatenate([np.zeros(10), mid[10:] - mid[:-10]])
    regimes = np.array(s.regime)
    one_tick_by_regime = {
        k: round(float(np.mean(spread[regimes == k] == 1)), 4) for k in REGIMES if np.any(regimes == k)
    }
    hours = len(mid) / 3600
    return {
        "S1_one_tick_time_share": round(mk.time_one_tick / mk.time_total, 4),
        "S1_one_tick_sampled_by_regime": one_tick_by_regime,
        "S2_kurtosis_1s": round(C.excess_kurtosis(C.log_returns(mid)), 1),
        "S2_kurtosis_1min": round(C.excess_kurtosis(C.log_returns(mid, 60)), 1),
        "S3_share_seconds_unchanged": round(C.share_unchanged(mid), 3),
        "S6_min_levels_per_side": int(np.min(s.array("levels"))),
        "S6_p01_levels_per_side": int(np.quantile(s.array("levels"), 0.01)),
        "S8_acf1_10s_returns": round(C.autocorr(C.log_returns(mid, 10), 1), 3),
        "P1_auc_imbalance_10s": round(C.predictability(mid, imbalance, 10), 3),
        "P2_auc_imbalance_30s": round(C.predictability(mid, imbalance, 30), 3),
        "P2_auc_imbalance_60s": round(C.predictability(mid, imbalance, 60), 3),
        "P2_auc_all_features_60s": round(C.predictability(mid, every, 60), 3),
        "P3_auc_momentum_10s": round(C.predictability(mid, past10, 10), 3),
        "P4_decile_move_bp_60s": round(_p4(mid, every, 60), 2),
        "return_std_1min_pct": round(float(np.std(C.log_returns(mid, 60))) * 100, 4),
        "trades_per_second": round(float(np.mean(s.array("trades"))), 1),
        "notional_musd_per_hour": round(float(np.sum(s.array("notional"))) / hours / 1e6, 1),
        "touch_depth_base_units": round(float(np.mean(s.array("depth_touch"))) * float(mk.spec.qty_step), 3),
        "event_counts": dict(
            zip(
                ("add_bid", "add_ask", "cancel_bid", "cancel_ask", "market", "sweep", "quote"),
                mk.counts,
                strict=True,
            )
        ),
    }


def stylised(hours: float = 2.5, seed: int = 42) -> dict[str, Any]:
    """One run of the three symbols with regime switching and manipulation, sampled every second."""
    clock = _Clock()
    market = SyntheticMarket(_engine(clock), SYMBOLS, seed=seed)
    start = time.perf_counter()
    samples = C.sample(market, T0, hours * 3600)
    wall = time.perf_counter() - start
    assert market.chain is not None and market.now is not None
    path = [*market.chain.path(market.now), (market.now, "end")]
    shares = dict.fromkeys(REGIMES, 0.0)
    for (a, name), (b, _) in itertools.pairwise(path):
        shares[name] += (b - a) / (market.now - T0)
    kinds: dict[str, int] = {}
    for record in market.ground_truth():
        kinds[record["kind"]] = kinds.get(record["kind"], 0) + 1
    return {
        "hours": hours,
        "seed": seed,
        "x_realtime": round(hours * 3600 / wall, 1),
        "R1_regime_time_shares": {k: round(v, 3) for k, v in shares.items()},
        "regime_changes": len(path) - 2,
        "episodes": kinds,
        "symbols": {s: _symbol_facts(market, s, samples[s]) for s in SYMBOLS},
    }


def book_changes(seconds: float = 300.0) -> dict[str, float]:
    """S7: mean changed price levels per 100 ms among the top 200 of each side, calm regime."""
    clock = _Clock()
    engine = _engine(clock)
    config = MarketConfig(fixed_regime="calm", manipulation=ManipulationParams(enabled=False))
    market = SyntheticMarket(engine, SYMBOLS, seed=7, config=config)
    market.advance(clock.now)
    for book in engine.books.values():
        book.track_changes = True  # the engine's books do not track changed levels by default
        book.drain_changes()
    counts: dict[str, list[float]] = {s: [] for s in SYMBOLS}
    for _ in range(int(seconds * 10)):
        clock.now += 100
        market.advance(clock.now)
        for symbol in SYMBOLS:
            book = engine.books[symbol]
            changes = book.drain_changes()
            n = 0
            for side in (BUY, SELL):
                top = book.depth(side, 200)
                if not top:
                    continue
                edge = top[-1][0]
                if side == BUY:
                    n += sum(1 for price in changes[side] if price >= edge)
                else:
                    n += sum(1 for price in changes[side] if price <= edge)
            counts[symbol].append(n / 2)
    return {s: round(float(np.mean(v)), 1) for s, v in counts.items()}


def latent_clustering(hours: float = 96.0) -> dict[str, float]:
    """S4 on the latent fair value alone (BTC, regime switching): autocorrelation of |1 min returns|."""
    config = MarketConfig()
    chain = RegimeChain(config, Generator(PCG64(11)), 0)
    latent = Latent(
        config, config.symbol("BTCUSDT"), Generator(PCG64(12)), chain, MarketFactor(Generator(PCG64(13))), 0
    )
    per_minute = 60_000 // config.latent.step_ms
    xs = np.empty(int(hours * 60))
    for i in range(len(xs)):
        for _ in range(per_minute):
            latent.step()
        xs[i] = latent.x
    r = np.abs(np.diff(xs))
    return {
        "hours": hours,
        **{f"acf_abs_1min_lag{lag}": round(C.autocorr(r, lag), 3) for lag in (1, 5, 10, 30, 60)},
        "kurtosis_1min": round(C.excess_kurtosis(np.diff(xs)), 1),
        "std_1min_pct": round(float(np.std(np.diff(xs))) * 100, 4),
    }


def volatile_spread(seconds: float = 300.0) -> dict[str, float]:
    """S1 in the volatile regime (a few hours with switching rarely visit it): one-tick time share."""
    clock = _Clock()
    config = MarketConfig(fixed_regime="volatile", manipulation=ManipulationParams(enabled=False))
    market = SyntheticMarket(_engine(clock), SYMBOLS, seed=5, config=config)
    market.advance(clock.now)
    for _ in range(int(seconds)):
        clock.now += 1000
        market.advance(clock.now)
    return {s: round(m.time_one_tick / m.time_total, 4) for s, m in market.markets.items()}


def run(quick: bool = False) -> dict[str, Any]:
    """Every figure of the generator's benchmark, as a JSON-able dict (`quick`: a short speed run only)."""
    started = time.perf_counter()
    if quick:
        return {"speed": speed(seconds=40.0), "wall_seconds": round(time.perf_counter() - started, 1)}
    result: dict[str, Any] = {"speed": speed()}
    facts = stylised()
    facts["S1_one_tick_time_share_volatile"] = volatile_spread()
    facts["S7_changed_levels_per_100ms_top200_calm"] = book_changes()
    facts["S4_latent_only"] = latent_clustering()
    facts["P4_taker_round_trip_bp"] = TAKER_ROUND_TRIP_BP
    result["facts"] = facts
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def section(result: Mapping[str, Any]) -> Section:
    speed = result["speed"]
    notes = [
        "The stylised facts of the same module are statistics of the market rather than costs: they are "
        "in results.json under `facts` and compared with their targets in docs/exchange_sim_market.md §16."
    ]
    if "facts" not in result:
        notes = ["Quick run: the stylised facts were not measured."]
    return Section(
        title="Synthetic market",
        summary=(
            "Simulated seconds per CPU second of the paper exchange's synthetic market for BTC, ETH and SOL "
            "together at full speed (× real time on one core), against the scripted ladder market driven the "
            "same way"
        ),
        figures=[
            Figure("synthetic market, 100 ms steps", speed["synthetic_x_realtime"], "× real time",
                   "ladder market, 100 ms steps", speed["ladder_x_realtime"]),
            Figure("synthetic market, 10 ms steps (the paper exchange's driver)",
                   speed["synthetic_x_realtime_10ms_steps"], "× real time", "ladder market, 10 ms steps",
                   speed["ladder_x_realtime_10ms_steps"]),
        ],
        notes=notes,
        details=result,
    )  # fmt: skip
