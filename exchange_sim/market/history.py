"""The kline history the paper exchange serves from its start (docs/exchange_sim_market.md §13.1).

At start the venue asks the market for ``history_minutes`` one-minute klines ending at the minute before
the start, so that ``GET /v5/market/kline`` (and a client's 200-candle load) returns a full history at
once. They come from the latent process alone, vectorised at 1 s: the three log-volatility components
and the jumps of docs/exchange_sim_market.md §6 in the start regime, OHLC per minute on the tick grid, the path shifted
so its last close is the start price where the live book opens. Volume is synthetic: the symbol's calm
minute volume scaled by the minute's volatility, with log-normal noise; turnover is volume times the
minute's typical price. Each symbol draws from a stream of its own (spawned, not taken from the live
streams), so the live simulation is the same with or without history.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np

from exchange_sim.instruments import Instrument
from exchange_sim.klines import Candle
from exchange_sim.market.params import MarketConfig, SymbolParams

MINUTE_MS = 60_000
STEPS_PER_MINUTE = 60  # the path is sampled every second
VOLUME_NOISE = 0.35  # sigma of the log-normal noise of a minute's volume
TOUCH_TARGETS_PER_MINUTE = 25.0  # minute volume when SymbolParams.minute_volume is not set
_BLOCK = 64  # steps per matrix product of the AR(1) filter


def ar1(a: float, shocks: np.ndarray, h0: float) -> np.ndarray:
    """``h[t] = a·h[t−1] + shocks[t]`` with ``h[−1] = h0``, by blocks of 64 steps (one matmul each).

    Within a block the recursion is a lower-triangular matrix of powers of ``a``; the carry between
    blocks is a short scalar loop, so a 60,000-step path costs about a thousand Python iterations.
    """
    n = len(shocks)
    if n == 0:
        return np.zeros(0)
    blocks = -(-n // _BLOCK)
    padded = np.zeros(blocks * _BLOCK)
    padded[:n] = shocks
    lag = np.arange(_BLOCK)[:, None] - np.arange(_BLOCK)[None, :]
    kernel = np.where(lag >= 0, a ** np.maximum(lag, 0), 0.0)
    within = padded.reshape(blocks, _BLOCK) @ kernel.T
    decay = a ** np.arange(1, _BLOCK + 1)
    carry = h0
    out = np.empty_like(within)
    for b in range(blocks):
        out[b] = within[b] + decay * carry
        carry = float(out[b, -1])
    return out.reshape(-1)[:n]


def kline_history(
    config: MarketConfig, symbol: str, spec: Instrument, gen: np.random.Generator, before_ms: int
) -> list[Candle]:
    """``config.history_minutes`` closed one-minute candles of ``symbol``, oldest first, the last one
    starting one minute before the minute of ``before_ms``."""
    minutes = config.history_minutes
    if minutes == 0:
        return []
    params = config.symbol(symbol)
    log_path, sigma = _latent_path(config, params, gen, minutes * STEPS_PER_MINUTE)
    tick = float(spec.tick_size)
    ticks = np.maximum(np.rint(np.exp(log_path) / tick), 1).astype(np.int64)
    opens = ticks[:-1:STEPS_PER_MINUTE]
    closes = ticks[STEPS_PER_MINUTE::STEPS_PER_MINUTE]
    # Minute m spans samples 60m (its open, the previous close) to 60(m + 1) (its close).
    spans = np.lib.stride_tricks.sliding_window_view(ticks, STEPS_PER_MINUTE + 1)[::STEPS_PER_MINUTE]
    highs, lows = spans.max(axis=1), spans.min(axis=1)
    volume_lots = _minute_volume(config, params, spec, gen, sigma, minutes)
    first_start = before_ms - before_ms % MINUTE_MS - minutes * MINUTE_MS
    candles: list[Candle] = []
    for m in range(minutes):
        start = first_start + m * MINUTE_MS
        o, h, lo, c = int(opens[m]), int(highs[m]), int(lows[m]), int(closes[m])
        qty = spec.lots_to_qty(int(volume_lots[m]))
        typical = spec.ticks_to_price(round((o + h + lo + c) / 4))
        candles.append(
            Candle(
                "1",
                start,
                spec.ticks_to_price(o),
                spec.ticks_to_price(h),
                spec.ticks_to_price(lo),
                spec.ticks_to_price(c),
                volume=qty,
                turnover=(qty * typical).quantize(Decimal("0.0001")),
                timestamp=start + MINUTE_MS - 1,
                confirm=True,
            )
        )
    return candles


def _latent_path(
    config: MarketConfig, params: SymbolParams, gen: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Log price at samples 0..n (the last one = log start price) and the volatility per 1 s step."""
    lp = config.latent
    regime = config.regimes[config.fixed_regime or config.start_regime]
    log_vol = np.zeros(n)
    for tau, eta in zip(lp.vol_taus, lp.vol_etas, strict=True):
        a = math.exp(-1.0 / tau)
        log_vol += ar1(a, eta * math.sqrt(1 - a * a) * gen.standard_normal(n), eta * gen.standard_normal())
    jumps = gen.random(n) < regime.jumps_per_hour / 3600.0
    jump_sizes = regime.jump_scale * gen.standard_exponential(n) * np.where(gen.random(n) < 0.5, 1.0, -1.0)
    # The fast volatility kick after a jump decays like the fastest component and acts from the next step.
    kick = ar1(math.exp(-1.0 / lp.vol_taus[0]), lp.jump_kick * jumps, 0.0)
    kick = np.concatenate(([0.0], kick[:-1]))
    eta2 = sum(eta * eta for eta in lp.vol_etas)
    sigma = regime.sigma * params.vol_scale * np.exp(log_vol + kick - eta2)
    trend = regime.drift * (1.0 if gen.random() < 0.5 else -1.0)
    steps = trend + sigma * gen.standard_normal(n) + np.where(jumps, jump_sizes, 0.0)
    path = np.concatenate(([0.0], np.cumsum(steps)))
    return path - path[-1] + math.log(params.start_price), sigma


def _minute_volume(
    config: MarketConfig,
    params: SymbolParams,
    spec: Instrument,
    gen: np.random.Generator,
    sigma: np.ndarray,
    minutes: int,
) -> np.ndarray:
    """Lots traded per minute: the calm minute volume times the minute's volatility relative to calm."""
    base = params.minute_volume or TOUCH_TARGETS_PER_MINUTE * params.touch_target
    # The mean of sigma (not of sigma²) under the log-normal volatility is calm·exp(−Σ η²/2): divide it
    # out so that calm minutes trade `base` on average.
    eta2 = sum(eta * eta for eta in config.latent.vol_etas)
    calm = config.regimes["calm"].sigma * params.vol_scale * math.exp(-eta2 / 2)
    minute_sigma = np.sqrt((sigma.reshape(minutes, STEPS_PER_MINUTE) ** 2).mean(axis=1))
    noise = np.exp(VOLUME_NOISE * gen.standard_normal(minutes) - VOLUME_NOISE**2 / 2)
    volume = base * minute_sigma / calm * noise
    lots: np.ndarray = np.maximum(np.rint(volume / float(spec.qty_step)), 1).astype(np.int64)
    return lots
