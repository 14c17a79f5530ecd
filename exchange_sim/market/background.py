"""Anonymous volume of one symbol: a dense mirror of the engine's book, and the vectorised background.

The engine's :class:`~exchange_sim.book.OrderBook` is the single truth: every anonymous add, cancel and
fill acts on it, so user orders resting there meet the simulated flow with exact price-time priority,
and the server's book stream (which diffs the top levels) sees every change. :class:`Depth` keeps, next to it,
two dense int64 arrays of *anonymous* lots per absolute tick (docs/exchange_sim_market.md §5) so that the background
batch (§10), frontier and hole seeding (§9) are a handful of numpy operations over ``D`` ticks per side
instead of a Python loop over levels. Only the levels a batch actually changes are written to the book.
The mirror stays exact because anonymous volume changes in three ways only: :meth:`Depth.add` and
:meth:`Depth.cancel` (which update both), and fills, which the engine reports through its
``anonymous_fill_hook`` to :meth:`Depth.on_fill` whoever the taker was.
"""

from __future__ import annotations

import math

import numpy as np

from exchange_sim.book import BUY, SELL, OrderBook
from exchange_sim.market.params import BackgroundParams, SymbolParams

BID, ASK = 0, 1
SIDE_NAMES = (BUY, SELL)


class Depth:
    """Dense anonymous-volume mirror of one book plus the background model that evolves it."""

    def __init__(
        self,
        book: OrderBook,
        bg: BackgroundParams,
        sp: SymbolParams,
        lot: float,
        gen: np.random.Generator,
        center: int,
    ) -> None:
        self.book = book
        self.bg = bg
        self.gen = gen
        self.D = bg.depth
        self.W = bg.window
        self.arr = (np.zeros(self.W, np.int64), np.zeros(self.W, np.int64))
        self.base = center - self.W // 2
        self.far = [center - self.D, center + self.D]  # seeded frontier per side (absolute ticks)
        d = np.arange(1, self.D + 1, dtype=np.float64)
        w = 1.0 - np.exp(-d / sp.d0)
        self.n = sp.n_near + (sp.n_far - sp.n_near) * w  # orders per tick
        self.s = (sp.s_near + (sp.s_far - sp.s_near) * w) / lot  # lots per order
        lifetime = bg.lifetime_near + bg.lifetime_extra * w
        dt = bg.batch_ms / 1000.0
        self.arrival = self.n / lifetime * dt
        self.p_cancel = 1.0 - np.exp(-dt / lifetime)
        self.cap = 3.0 * self.n * self.s + self.s
        self.stale = 1.0 - math.exp(-dt / bg.stale_tau)
        self.tilt_ticks = min(bg.tilt_ticks, self.D)
        # Both sides of a batch as one array: bids by distance, then asks by distance.
        self.s2 = np.concatenate((self.s, self.s))
        self.arrival2 = np.concatenate((self.arrival, self.arrival))
        self.p_cancel2 = np.minimum(1.0, np.concatenate((self.p_cancel, self.p_cancel)))
        self.cap2 = np.concatenate((self.cap, self.cap))
        self.zeta_shift = -0.5 * bg.size_sigma**2  # makes the log-normal size factor mean one

    # -- mirror ------------------------------------------------------------------------------------

    def add(self, side: int, tick: int, lots: int) -> None:
        """Add anonymous ``lots`` at ``tick`` to the book (back of the queue) and the mirror."""
        i = tick - self.base
        if not 0 <= i < self.W:
            # A negative index would silently wrap around the array: refuse instead.
            raise RuntimeError(f"tick {tick} outside the mirror window [{self.base}, {self.base + self.W})")
        self.book.add_anonymous(SIDE_NAMES[side], tick, lots)
        self.arr[side][i] += lots

    def cancel(self, side: int, tick: int, lots: int) -> int:
        """Cancel up to ``lots`` of anonymous volume at ``tick``; returns what was removed."""
        removed = self.book.cancel_anonymous(SIDE_NAMES[side], tick, lots)
        if removed:
            self.arr[side][tick - self.base] -= removed
        return removed

    def on_fill(self, side: int, tick: int, lots: int) -> None:
        """Anonymous volume traded (reported by the engine's fill hook)."""
        self.arr[side][tick - self.base] -= lots

    def anon(self, side: int, tick: int) -> int:
        """Anonymous lots at ``tick``."""
        i = tick - self.base
        return int(self.arr[side][i]) if 0 <= i < self.W else 0

    def nonzero(self, side: int, lo: int, hi: int) -> list[int]:
        """Ticks in ``[lo, hi]`` holding anonymous volume, ascending."""
        lo_i, hi_i = max(lo - self.base, 0), min(hi - self.base, self.W - 1)
        if hi_i < lo_i:
            return []
        return (self.arr[side][lo_i : hi_i + 1].nonzero()[0] + (lo_i + self.base)).tolist()

    def check(self) -> None:
        """Raise ``AssertionError`` if the mirror differs from the book's anonymous volume (tests)."""
        for side in (BID, ASK):
            name = SIDE_NAMES[side]
            levels = {
                lvl.price: self.book.anonymous_lots(name, lvl.price) for lvl in self.book.side(name).levels()
            }
            for i in np.flatnonzero(self.arr[side]).tolist():
                tick = i + self.base
                assert levels.get(tick, 0) == int(self.arr[side][i]), f"{name} mirror drift at {tick}"
            for tick, lots in levels.items():
                assert lots == self.anon(side, tick), f"{name} anonymous volume at {tick} outside mirror"

    # -- seeding -----------------------------------------------------------------------------------

    def _draw(self, d: np.ndarray) -> np.ndarray:
        """Stationary volume (lots) of levels at distances ``d`` (1-based): Poisson(n(d)) orders of s(d)."""
        i = np.minimum(d, self.D) - 1
        k = self.gen.poisson(self.n[i])
        volume: np.ndarray = np.rint(k * self.s[i]).astype(np.int64)
        return volume

    def _write(self, side: int, ticks: np.ndarray, lots: np.ndarray) -> None:
        """Add ``lots`` at ``ticks`` where positive (book and mirror)."""
        keep = lots > 0
        name, arr, base, add = SIDE_NAMES[side], self.arr[side], self.base, self.book.add_anonymous
        ticks, lots = ticks[keep], lots[keep]
        arr[ticks - base] += lots
        for tick, q in zip(ticks.tolist(), lots.tolist(), strict=True):
            add(name, tick, q)

    def seed_side(self, side: int, touch: int, touch_lots: int) -> None:
        """A fresh side: ``touch_lots`` at ``touch`` and the stationary profile behind it."""
        self.recentre(touch)
        if touch_lots > 0:
            self.add(side, touch, touch_lots)
        d = np.arange(1, self.D + 1)
        ticks = touch - d if side == BID else touch + d
        self._write(side, ticks, self._draw(d))
        self.far[side] = int(ticks[-1])

    def frontier(self, side: int, touch: int) -> None:
        """Seed levels entering the maintained range; drop anonymous volume far beyond it."""
        margin = self.bg.trim_margin
        if side == BID:
            target = touch - self.D
            if target < self.far[BID]:
                ticks = np.arange(target, self.far[BID])
                self._write(BID, ticks, self._draw(touch - ticks))
                self.far[BID] = target
            elif target - margin > self.far[BID]:
                self._trim(BID, self.far[BID], target - margin // 2 - 1)
                self.far[BID] = target - margin // 2
        else:
            target = touch + self.D
            if target > self.far[ASK]:
                ticks = np.arange(self.far[ASK] + 1, target + 1)
                self._write(ASK, ticks, self._draw(ticks - touch))
                self.far[ASK] = target
            elif target + margin < self.far[ASK]:
                self._trim(ASK, target + margin // 2 + 1, self.far[ASK])
                self.far[ASK] = target + margin // 2

    def _trim(self, side: int, lo: int, hi: int) -> None:
        name, cancel = SIDE_NAMES[side], self.book.cancel_anonymous
        for tick in self.nonzero(side, lo, hi):
            i = tick - self.base
            cancel(name, tick, int(self.arr[side][i]))
            self.arr[side][i] = 0

    def holes(self, side: int, touch: int) -> None:
        """Seed empty levels beyond ``hole_from`` ticks if fewer than ``min_levels`` are occupied."""
        vol = self._slice(side, touch)
        if np.count_nonzero(vol) >= self.bg.min_levels:
            return
        d = np.flatnonzero(vol == 0) + 1
        d = d[d > self.bg.hole_from]
        ticks = touch - d if side == BID else touch + d
        self._write(side, ticks, self._draw(d))

    def recentre(self, mid: int) -> None:
        """Move the window so that ``mid`` is central, if the maintained range comes near an edge."""
        reach = self.D + self.bg.trim_margin
        if mid - reach - self.D - self.base > 0 and mid + reach + self.D - self.base < self.W:
            return
        new_base = mid - self.W // 2
        shift = new_base - self.base
        for arr in self.arr:
            old = arr.copy()
            arr[:] = 0
            if 0 < shift < self.W:
                arr[: self.W - shift] = old[shift:]
            elif -self.W < shift <= 0:
                arr[-shift:] = old[: self.W + shift]
        self.base = new_base

    # -- background batch (docs/exchange_sim_market.md §10) --------------------------------------------------------

    def _slice(self, side: int, touch: int) -> np.ndarray:
        i0 = touch - self.base
        if side == BID:
            return self.arr[BID][i0 - self.D : i0][::-1]
        return self.arr[ASK][i0 + 1 : i0 + 1 + self.D]

    def _poisson(self, lam: np.ndarray) -> np.ndarray:
        """Independent Poisson(lam[i]) counts, drawn as a Poisson total split multinomially.

        The split of a Poisson total in proportion to the means gives exactly independent Poisson
        counts, and costs a cumulative sum and a few uniforms instead of one draw per level (the
        means are mostly far below one).
        """
        cum = lam.cumsum()  # array methods: numpy's module functions add a Python wrapper per call
        total = float(cum[-1])
        if total <= 0:
            return np.zeros(len(lam))
        n = int(self.gen.poisson(total))
        if not n:
            return np.zeros(len(lam))
        idx = cum.searchsorted(self.gen.random(n) * total, side="right")
        np.minimum(idx, len(lam) - 1, out=idx)
        return np.bincount(idx, minlength=len(lam)).astype(np.float64)

    def batch(self, bid: int, ask: int, alpha: float) -> None:
        """One Delta_b step of arrivals, cancels and stale cuts over distances 1..D behind both touches.

        Both sides are computed as one array of 2·D levels (bids by distance, then asks), and the
        arrivals and cancels of all of them come from one Poisson split: the counts are independent
        either way, and one pass halves the numpy calls, which dominate a batch's cost.
        """
        gen, bg, D = self.gen, self.bg, self.D
        ib, ia = bid - self.base, ask - self.base
        bid_view = self.arr[BID][ib - D : ib][::-1]  # views into the mirror: writes go through
        ask_view = self.arr[ASK][ia + 1 : ia + 1 + D]
        vol_i = np.concatenate((bid_view, ask_view))
        vol = vol_i.astype(np.float64)
        s2, tilt_n = self.s2, self.tilt_ticks
        tilt_b = math.exp(bg.tilt * alpha)
        tilt_a = 1.0 / tilt_b
        # Arrival means: the profile, x10 on empty levels, and the alpha tilt near each touch.
        lam = np.empty(4 * D)
        arrive = lam[: 2 * D]
        np.multiply(self.arrival2, np.where(vol_i == 0, bg.empty_boost, 1.0), out=arrive)
        arrive[:tilt_n] *= tilt_b
        arrive[D : D + tilt_n] *= tilt_a
        # Cancels per level are Binomial(orders, p); with p below ~0.25 a Poisson draw capped at the
        # number of orders is close, and it lets both draws share the cheap split below.
        orders = np.ceil(vol / s2)
        p_cancel = self.p_cancel2.copy()
        p_cancel[:tilt_n] = np.minimum(1.0, self.p_cancel[:tilt_n] / tilt_b)
        p_cancel[D : D + tilt_n] = np.minimum(1.0, self.p_cancel[:tilt_n] / tilt_a)
        np.multiply(orders, p_cancel, out=lam[2 * D :])
        counts = self._poisson(lam)
        arrivals = counts[: 2 * D]
        cancels = np.minimum(counts[2 * D :], orders) * s2
        stale = np.maximum(vol - self.cap2, 0.0) * self.stale
        # Round to the nearest lot: a fractional cut must not chip one lot off a level every batch.
        new = np.maximum(np.rint(vol - cancels - stale), 0.0)
        hit = arrivals.nonzero()[0]
        if hit.size:
            zeta = np.exp(bg.size_sigma * gen.standard_normal(hit.size) + self.zeta_shift)
            new[hit] += np.rint(arrivals[hit] * s2[hit] * zeta)
        new_i = new.astype(np.int64)
        diff = new_i - vol_i
        changed = diff.nonzero()[0]
        if not changed.size:
            return
        bid_view[:] = new_i[:D]
        ask_view[:] = new_i[D:]
        split = int(changed.searchsorted(D))
        deltas = diff[changed].tolist()
        if split:
            self.book.apply_anonymous(BUY, (bid - 1 - changed[:split]).tolist(), deltas[:split])
        if split < changed.size:
            self.book.apply_anonymous(SELL, (ask + 1 - D + changed[split:]).tolist(), deltas[split:])

    # -- statistics --------------------------------------------------------------------------------

    def typical_level(self, side: int, touch: int, fallback: float) -> float:
        """Median anonymous lots over non-empty levels 2..10 ticks behind ``touch`` (docs/exchange_sim_market.md §12 ``L``)."""
        vol = self._slice(side, touch)[1:10]
        vol = vol[vol > 0]
        return float(np.median(vol)) if vol.size else fallback

    def occupied(self, side: int, touch: int) -> int:
        """Non-empty anonymous levels within D ticks behind ``touch`` (check S6)."""
        return int(np.count_nonzero(self._slice(side, touch)))
