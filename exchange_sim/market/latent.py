"""The hidden side of the market: regimes, the shared market factor and each symbol's fair value.

* :class:`Draws` hands out pre-drawn random numbers so the scalar loops make no per-event numpy call.
* :class:`RegimeChain` is the continuous-time Markov chain of regimes shared by all symbols
  (docs/exchange_sim_market.md §7), extended lazily on its own random stream, plus the scheduled shift.
* :class:`MarketFactor` is the shared normal shock of each latent step, indexed by step number so every
  symbol sees the same value whatever order the symbols are advanced in.
* :class:`Latent` is one symbol's log fair value ``x = ln V`` with multi-scale stochastic volatility,
  jumps, regime drift and the slow private signal ``alpha`` (docs/exchange_sim_market.md §6).
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np

from exchange_sim.market.params import REGIMES, MarketConfig, RegimeParams, SymbolParams

BLOCK = 8192


class Draws:
    """Uniforms, unit exponentials and standard normals drawn from one generator in blocks of 8192."""

    __slots__ = ("_e", "_ei", "_n", "_ni", "_u", "_ui", "gen")

    def __init__(self, gen: np.random.Generator) -> None:
        self.gen = gen
        self._u: list[float] = []
        self._e: list[float] = []
        self._n: list[float] = []
        self._ui = self._ei = self._ni = 0

    def unif(self) -> float:
        """A uniform in [0, 1)."""
        i = self._ui
        if i == len(self._u):
            self._u = self.gen.random(BLOCK).tolist()
            i = 0
        self._ui = i + 1
        return self._u[i]

    def exp(self) -> float:
        """A unit exponential."""
        i = self._ei
        if i == len(self._e):
            self._e = self.gen.standard_exponential(BLOCK).tolist()
            i = 0
        self._ei = i + 1
        return self._e[i]

    def norm(self) -> float:
        """A standard normal."""
        i = self._ni
        if i == len(self._n):
            self._n = self.gen.standard_normal(BLOCK).tolist()
            i = 0
        self._ni = i + 1
        return self._n[i]


class RegimeChain:
    """Regime path of the whole market: ``(start_ms, regime index, trend sign)`` change points."""

    def __init__(self, config: MarketConfig, gen: np.random.Generator, start_ms: int) -> None:
        self.config = config
        self.draws = Draws(gen)
        self.params: list[RegimeParams] = [config.regimes[k] for k in REGIMES]
        first = config.fixed_regime or config.start_regime
        k = REGIMES.index(first)
        self._starts: list[float] = [float(start_ms)]
        self._regimes: list[int] = [k]
        self._signs: list[int] = [self._sign()]
        self._switching = config.regimes_enabled and config.fixed_regime is None
        self._next = float(start_ms) + self._holding(k) if self._switching else math.inf

    def _sign(self) -> int:
        return 1 if self.draws.unif() < 0.5 else -1

    def _holding(self, k: int) -> float:
        return self.draws.exp() * self.params[k].mean_minutes * 60_000.0

    def _extend(self, t_ms: float) -> None:
        while self._next <= t_ms:
            current = REGIMES[self._regimes[-1]]
            u, acc, nxt = self.draws.unif(), 0.0, current
            for name, p in self.config.regimes[current].next.items():
                acc += p
                nxt = name
                if u < acc:
                    break
            k = REGIMES.index(nxt)
            self._starts.append(self._next)
            self._regimes.append(k)
            self._signs.append(self._sign())
            self._next += self._holding(k)

    def at(self, t_ms: float) -> tuple[int, int]:
        """Regime index and trend sign in force at ``t_ms``."""
        self._extend(t_ms)
        i = bisect_right(self._starts, t_ms) - 1
        return self._regimes[i], self._signs[i]

    def name_at(self, t_ms: float) -> str:
        """Name of the regime in force at ``t_ms``."""
        return REGIMES[self.at(t_ms)[0]]

    def path(self, until_ms: float) -> list[tuple[int, str]]:
        """Change points ``(start_ms, regime)`` up to ``until_ms``."""
        self._extend(until_ms)
        return [
            (int(s), REGIMES[k]) for s, k in zip(self._starts, self._regimes, strict=True) if s <= until_ms
        ]

    def shifted(self, t_ms: float) -> bool:
        """Whether the scheduled shift is in force at ``t_ms``."""
        at = self.config.shift.at_ms
        return at is not None and t_ms >= at


class MarketFactor:
    """Shared N(0, 1) shock of latent step ``n`` (counted from the market's start), drawn in blocks."""

    def __init__(self, gen: np.random.Generator) -> None:
        self.gen = gen
        self._blocks: dict[int, list[float]] = {}
        self._made = 0  # blocks drawn so far, in order, so that values never depend on who asks first

    def __call__(self, n: int) -> float:
        b = n // BLOCK
        block = self._blocks.get(b)
        if block is None:
            while self._made <= b:
                self._blocks[self._made] = self.gen.standard_normal(BLOCK).tolist()
                self._made += 1
            block = self._blocks[b]
        return block[n % BLOCK]

    def forget_before(self, n: int) -> None:
        """Drop blocks wholly before step ``n`` (every symbol has passed them)."""
        for b in [b for b in self._blocks if (b + 1) * BLOCK <= n]:
            del self._blocks[b]


class Latent:
    """One symbol's hidden fair value on the fixed grid of ``latent.step_ms``."""

    def __init__(
        self,
        config: MarketConfig,
        params: SymbolParams,
        gen: np.random.Generator,
        chain: RegimeChain,
        factor: MarketFactor,
        start_ms: int,
    ) -> None:
        lp = config.latent
        self.config = config
        self.params = params
        self.draws = Draws(gen)
        self.chain = chain
        self.factor = factor
        self.dt = lp.step_ms / 1000.0
        self.a = [math.exp(-self.dt / tau) for tau in lp.vol_taus]
        self.b = [eta * math.sqrt(1 - a * a) for eta, a in zip(lp.vol_etas, self.a, strict=True)]
        self.eta2 = sum(eta * eta for eta in lp.vol_etas)
        self.a_alpha = math.exp(-self.dt / lp.alpha_tau)
        self.b_alpha = math.sqrt(1 - self.a_alpha**2)
        self.alpha_coef = lp.c_alpha / math.sqrt(lp.alpha_tau)
        self.rho = params.factor_loading
        self.rho_c = math.sqrt(1 - self.rho**2)
        # Start from the stationary laws so the first minutes look like any other.
        self.h = [eta * self.draws.norm() for eta in lp.vol_etas]
        self.alpha = self.draws.norm()
        self.j = 0.0
        self.x = math.log(params.start_price)
        self.n = 0  # steps taken
        self.t = float(start_ms)  # time of the last step
        self.regime = 0
        self.sigma = 0.0
        self._update_sigma(start_ms)

    def _update_sigma(self, t_ms: float) -> None:
        k, _ = self.chain.at(t_ms)
        self.regime = k
        rp = self.chain.params[k]
        mult = self.config.shift.sigma if self.chain.shifted(t_ms) else 1.0
        self.sigma = rp.sigma * self.params.vol_scale * mult * math.exp(sum(self.h) + self.j - self.eta2)

    def step(self) -> None:
        """Advance one grid step of ``step_ms``."""
        t = self.t + self.config.latent.step_ms
        self.t = t
        k, sign = self.chain.at(t)
        rp = self.chain.params[k]
        d = self.draws
        h = self.h
        for i in range(3):
            h[i] = self.a[i] * h[i] + self.b[i] * d.norm()
        self.alpha = self.a_alpha * self.alpha + self.b_alpha * d.norm()
        self.j *= self.a[0]
        self._update_sigma(t)
        sigma, dt = self.sigma, self.dt
        eps = self.rho * self.factor(self.n) + self.rho_c * d.norm()
        dx = (rp.drift * sign + self.alpha_coef * sigma * self.alpha) * dt + sigma * math.sqrt(dt) * eps
        # One uniform per step for the jump test keeps the stream aligned whether or not a jump occurs.
        u = d.unif()
        if u < rp.jumps_per_hour / 3600.0 * dt:
            size = rp.jump_scale * d.exp()
            dx += size if d.unif() < 0.5 else -size
            self.j += self.config.latent.jump_kick
        self.x += dx
        self.n += 1

    @property
    def value(self) -> float:
        """The fair value V in USDT."""
        return math.exp(self.x)
