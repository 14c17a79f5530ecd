"""One symbol's event loop: queue-reactive touch events, market orders, sweeps and in-spread quotes.

This is docs/exchange_sim_market.md §8, §9 and §15 for one symbol. Between the fixed-grid boundaries (latent step
every 50 ms, background batch every 100 ms, scripted manipulator actions) the touch evolves as a
continuous-time Markov chain whose intensities depend on the touch queues and on the normalised gap
``G = (V - mid) / g`` between the hidden fair value and the mid. The next event time is kept as an
absolute time; when the total intensity changes (after an event, at a boundary, or because a user
order changed the book between two ``advance`` calls) the remaining exposure is rescaled, which is
exact by memorylessness and draws nothing, so a run does not depend on how ``advance`` is chunked.

Every action goes to the engine's book: touch adds and cancels through :class:`Depth` (anonymous
segments), market orders and sweeps through :meth:`MatchingEngine.market_anonymous` (strict
price-time priority through anonymous segments and tracked orders alike).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np

from exchange_sim.book import BUY, SELL
from exchange_sim.market.background import ASK, BID, Depth
from exchange_sim.market.latent import Draws, Latent, MarketFactor, RegimeChain
from exchange_sim.market.params import MarketConfig

if TYPE_CHECKING:
    from exchange_sim.market.manipulator import Manipulator
    from exchange_sim.matching import EngineResult, MatchingEngine

EVENTS = ("add_bid", "add_ask", "cancel_bid", "cancel_ask", "market", "sweep", "quote")
SWEEP_ALL = 1 << 62  # a sweep takes everything up to its limit price


class SymbolMarket:
    """The simulated flow of one symbol, acting on the engine's book of that symbol."""

    def __init__(
        self,
        engine: MatchingEngine,
        symbol: str,
        config: MarketConfig,
        gens: list[np.random.Generator],
        chain: RegimeChain,
        factor: MarketFactor,
        start_ms: int,
    ) -> None:
        self.engine = engine
        self.symbol = symbol
        self.config = config
        self.spec = engine.instruments[symbol]
        self.book = engine.books[symbol]
        self.sp = sp = config.symbol(symbol)
        self.chain = chain
        self.tick = float(self.spec.tick_size)
        self.lot = float(self.spec.qty_step)
        self.latent = Latent(config, sp, gens[0], chain, factor, start_ms)
        self.draws = Draws(gens[1])
        tp = config.touch
        self.tp = tp
        self.qbar = sp.touch_target / self.lot
        self.sbar = sp.touch_order / self.lot
        self.mkt_mu = math.log(sp.market_median / self.lot)
        self.mkt_cap = max(1, int(min(20 * self.qbar, float(self.spec.max_mkt_order_qty) / self.lot)))
        self.size_shift = -0.5 * tp.touch_size_sigma**2
        self.quote_lots = max(1, round(tp.quote_multiple * self.sbar))
        self.half = max(1, int(config.background.depth * tp.max_sweep_fraction))
        self.v = self.latent.value / self.tick  # fair value in ticks
        self._refresh()
        centre = int(self.v)
        self.depth = Depth(self.book, config.background, sp, self.lot, gens[2], centre)
        self.manip: Manipulator | None = None
        # Clock: last processed time, pending next event time, the total intensity it was drawn at.
        self.t = float(start_ms)
        self.t_next: float | None = None
        self.lam = 0.0
        # Book seq and spread when ``lam`` was computed (-1: inputs other than the book changed since).
        self._lam_seq = -1
        self._lam_spread = 1
        self.next_latent = float(start_ms + config.latent.step_ms)
        self.next_batch = float(start_ms + config.background.batch_ms)
        # Observables: mark and index EWMAs (ticks), premium average, counters for checks S1 and F1.
        self.mark = self.v
        self._mark_ticks = 0
        self._mark_price = Decimal(0)
        self.index = self.v
        self.premium = 0.0
        self.counts = [0] * len(EVENTS)
        self.meta_buy = True  # order-sign memory: direction and remaining children of the metaorder
        self.meta_left = 0
        self.time_total = 0.0
        self.time_one_tick = 0.0

    # -- set-up --------------------------------------------------------------------------------------

    def seed(self) -> None:
        """Build the initial book around V: a one-tick spread, targets at the touch, profile behind."""
        bid = math.floor(self.v)
        if bid == self.v:
            bid -= 1
        touch = max(1, round(self.qt))
        self.depth.seed_side(BID, bid, touch)
        self.depth.seed_side(ASK, bid + 1, touch)
        self.mark = (2 * bid + 1) / 2

    def _refresh(self) -> None:
        """Cache the regime- and shift-dependent quantities after a latent step."""
        self._lam_seq = -1  # the intensities depend on them: recompute before the next event
        lat, tp = self.latent, self.tp
        rp = self.chain.params[lat.regime]
        shifted = self.chain.shifted(lat.t)
        sh = self.config.shift
        self.qt = self.qbar * rp.touch_size * (sh.touch_target if shifted else 1.0)
        self.lam_m = rp.market_orders * (sh.market_orders if shifted else 1.0)
        self.phi = rp.informed
        self.g = max(lat.sigma * self.v * math.sqrt(tp.tau_lag), 0.5)

    # -- the loop ------------------------------------------------------------------------------------

    def run_until(self, t_end: float, out: list[EngineResult]) -> None:
        """Simulate up to exchange time ``t_end`` (ms), appending the engine results to ``out``."""
        manip = self.manip
        if (
            self.t_next is not None
            and self.t_next >= t_end
            and self.next_latent > t_end
            and self.next_batch > t_end
            and (manip is None or manip.next_time > t_end)
            and self.book.seq == self._lam_seq
        ):
            # Nothing happens before t_end and nothing changed the intensities since they were last
            # computed (the book is as it was, no boundary passed): the loop below would only elapse.
            # The venue advances every 10 ms, most often to a time like this.
            self._elapse(t_end - self.t, self._lam_spread)
            self.t = t_end
            return
        tp = self.tp
        bids, asks = self.book.bids, self.book.asks
        depth, draws = self.depth, self.draws
        k_add, k_can, base_add, base_can = tp.k_add, tp.k_cancel, tp.base_add, tp.base_cancel
        churn, beta, gamma, nu, fill = tp.churn, tp.beta, tp.gamma_alpha, tp.sweep_rate, tp.fill_rate
        sbar = self.sbar
        counts = self.counts
        while True:
            bl, al = bids.best(), asks.best()
            if bl is None or al is None:
                self._repair(bl is None, al is None)
                continue
            bb, ba, qb, qa = bl.price, al.price, bl.total, al.total
            anon_b, anon_a = depth.anon(BID, bb), depth.anon(ASK, ba)
            v = self.v
            gap = (v - (bb + ba) * 0.5) / self.g
            gap = 3.0 if gap > 3.0 else -3.0 if gap < -3.0 else gap
            lean = math.exp(beta * gap + gamma * self.latent.alpha)
            tb, ta = self.qt * lean, self.qt / lean
            r_add_b = k_add * max(tb - qb, 0.0) / sbar + base_add + churn
            r_add_a = k_add * max(ta - qa, 0.0) / sbar + base_add + churn
            r_can_b = (k_can * min(max(qb - tb, 0.0), anon_b) + base_can * anon_b) / sbar + (
                churn if anon_b else 0.0
            )
            r_can_a = (k_can * min(max(qa - ta, 0.0), anon_a) + base_can * anon_a) / sbar + (
                churn if anon_a else 0.0
            )
            stale = (gap > 0 and v >= ba) or (gap < 0 and v <= bb)
            r_sweep = nu * gap * gap if stale else 0.0
            r_quote = fill if ba - bb > 1 else 0.0
            total = r_add_b + r_add_a + r_can_b + r_can_a + self.lam_m + r_sweep + r_quote
            t = self.t
            if self.t_next is None:
                self.t_next = t + draws.exp() / total * 1000.0
            elif total != self.lam:
                self.t_next = t + (self.t_next - t) * self.lam / total
            self.lam = total
            self._lam_seq, self._lam_spread = self.book.seq, ba - bb
            boundary = min(self.next_latent, self.next_batch, t_end)
            if manip is not None and manip.next_time < boundary:
                boundary = manip.next_time
            if self.t_next >= boundary:
                self._elapse(boundary - t, ba - bb)
                self.t = boundary
                if boundary == self.next_latent:
                    self._latent_step((bb + ba) * 0.5)
                if boundary == self.next_batch:
                    self._batch(bb, ba)
                if manip is not None and manip.next_time <= boundary:
                    out.extend(manip.run_due(boundary))
                if boundary >= t_end:
                    return
                continue
            now = self.t_next
            self._elapse(now - t, ba - bb)
            self.t = now
            self.t_next = None
            u = draws.unif() * total
            if u < r_add_b:
                counts[0] += 1
                depth.add(BID, bb, self._touch_size())
            elif (u := u - r_add_b) < r_add_a:
                counts[1] += 1
                depth.add(ASK, ba, self._touch_size())
            elif (u := u - r_add_a) < r_can_b:
                counts[2] += 1
                depth.cancel(BID, bb, min(self._touch_size(), anon_b))
            elif (u := u - r_can_b) < r_can_a:
                counts[3] += 1
                depth.cancel(ASK, ba, min(self._touch_size(), anon_a))
            elif (u := u - r_can_a) < self.lam_m:
                counts[4] += 1
                self._market_order(gap, bb, ba, now, out)
            elif u - self.lam_m < r_sweep:
                counts[5] += 1
                self._sweep(gap, bb, ba, now, out)
            else:
                counts[6] += 1
                self._quote(bb, ba)
            if manip is not None and manip.live:
                out.extend(manip.after_event(now))

    def pause(self, ms: int) -> None:
        """Shift every clock of this symbol by ``ms``: the market stands still across a skipped gap."""
        self.t += ms
        if self.t_next is not None:
            self.t_next += ms
        self.next_latent += ms
        self.next_batch += ms
        self.latent.t += ms
        if self.manip is not None:
            self.manip.pause(ms)

    def _elapse(self, dt: float, spread: int) -> None:
        self.time_total += dt
        if spread == 1:
            self.time_one_tick += dt

    def _touch_size(self) -> int:
        size = self.sbar * math.exp(self.tp.touch_size_sigma * self.draws.norm() + self.size_shift)
        return max(1, round(size))

    # -- events --------------------------------------------------------------------------------------

    def _market_order(self, gap: float, bb: int, ba: int, now: float, out: list[EngineResult]) -> None:
        tp = self.tp
        p_buy = 0.5 + 0.5 * self.phi * math.tanh(tp.kappa * gap + tp.kappa_alpha * self.latent.alpha)
        if self.manip is not None:
            p_buy += self.manip.bias
        buy = self._metaorder_sign(p_buy) if tp.metaorders else self.draws.unif() < p_buy
        size = math.exp(self.mkt_mu + self.sp.market_sigma * self.draws.norm())
        lots = min(max(1, round(size)), self.mkt_cap)
        limit = ba + self.half if buy else max(1, bb - self.half)
        out.append(self.engine.market_anonymous(self.symbol, BUY if buy else SELL, lots, limit, int(now)))
        self._after_walk()

    def _metaorder_sign(self, p_buy: float) -> bool:
        """Direction with order-sign memory: a child of the running metaorder, or a fresh decision."""
        d, tp = self.draws, self.tp
        if self.meta_left > 0 and d.unif() < tp.metaorder_continue:
            self.meta_left -= 1
            return self.meta_buy
        buy = d.unif() < p_buy
        if self.meta_left <= 0:
            # A new metaorder: Pareto length (tail exponent a) by inversion, at least one child.
            self.meta_buy = buy
            self.meta_left = int((1.0 - d.unif()) ** (-1.0 / tp.metaorder_tail))
        return buy

    def _sweep(self, gap: float, bb: int, ba: int, now: float, out: list[EngineResult]) -> None:
        """Catch-up: pull a share psi of the stale side's anonymous volume up to V, trade the rest."""
        depth, pull = self.depth, self.tp.sweep_pull
        if gap > 0:
            side, lo, hi = ASK, ba, min(math.floor(self.v), ba + self.half)
            limit, taker = hi, BUY
        else:
            side, lo, hi = BID, max(math.ceil(self.v), bb - self.half, 1), bb
            limit, taker = lo, SELL
        if hi < lo:
            return
        for tick in depth.nonzero(side, lo, hi):
            cut = math.floor(depth.anon(side, tick) * pull)
            if cut:
                depth.cancel(side, tick, cut)
        if self.manip is not None:
            out.extend(self.manip.before_sweep(side, lo, hi, now))
        out.append(self.engine.market_anonymous(self.symbol, taker, SWEEP_ALL, limit, int(now)))
        self._after_walk()
        if hi - lo > 100:
            # A long sweep leaves holes; seed them now so every publication keeps enough levels (S6).
            for s in (BID, ASK):
                best = self.book.side(BUY if s == BID else SELL).best_price()
                if best is not None:
                    depth.holes(s, best)

    def _quote(self, bb: int, ba: int) -> None:
        """In-spread quote from V: a bid just below V if that improves the bid, else an ask above it."""
        vf = math.floor(self.v)
        price = min(vf, ba - 1)
        if price > bb:
            self.depth.add(BID, price, self.quote_lots)
            return
        price = max(vf + 1, bb + 1)
        if price < ba:
            self.depth.add(ASK, price, self.quote_lots)

    def _after_walk(self) -> None:
        """Keep the maintained range seeded and inside the window after the touch moved."""
        bb, ba = self.book.best_bid(), self.book.best_ask()
        if bb is None or ba is None:
            self._repair(bb is None, ba is None)
            return
        self.depth.recentre((bb + ba) // 2)
        self.depth.frontier(BID, bb)
        self.depth.frontier(ASK, ba)

    def _repair(self, no_bids: bool, no_asks: bool) -> None:
        """Re-seed an emptied side around V (only after extreme walks; keeps the book two-sided)."""
        touch = max(1, round(self.qt))
        if no_bids:
            ask = self.book.best_ask()
            bid = math.floor(self.v) if ask is None else min(math.floor(self.v), ask - 1)
            self.depth.seed_side(BID, max(bid, 1), touch)
        if no_asks:
            best_bid = self.book.best_bid()
            ask = math.floor(self.v) + 1 if best_bid is None else max(math.floor(self.v) + 1, best_bid + 1)
            self.depth.seed_side(ASK, ask, touch)

    # -- boundaries ----------------------------------------------------------------------------------

    def _latent_step(self, mid: float) -> None:
        lat = self.latent
        lat.step()
        self.v = lat.value / self.tick
        self._refresh()
        dt = self.config.latent.step_ms / 1000.0
        self.mark += (mid - self.mark) * (1.0 - math.exp(-dt / self.config.mark_tau))
        self.index += (self.v - self.index) * (1.0 - math.exp(-dt / self.config.index_tau))
        self.premium += ((self.mark - self.index) / self.index - self.premium) * (
            1.0 - math.exp(-dt / self.config.premium_tau)
        )
        self.next_latent += self.config.latent.step_ms

    def _batch(self, bb: int, ba: int) -> None:
        depth, alpha = self.depth, self.latent.alpha
        depth.recentre((bb + ba) // 2)
        depth.batch(bb, ba, alpha)
        depth.frontier(BID, bb)
        depth.frontier(ASK, ba)
        depth.holes(BID, bb)
        depth.holes(ASK, ba)
        self.next_batch += self.config.background.batch_ms

    # -- outputs ------------------------------------------------------------------------------------

    def mark_price(self) -> Decimal:
        """The mark price (EWMA of the mid) on the tick grid."""
        ticks = max(1, round(self.mark))
        if ticks != self._mark_ticks:  # asked after every advance; the tick moves far less often
            self._mark_ticks = ticks
            self._mark_price = self.spec.ticks_to_price(ticks)
        return self._mark_price

    def funding_rate(self) -> Decimal:
        """Bybit-style rate from the averaged premium: ``P + clamp(0.01% - P, -0.05%, 0.05%)``."""
        p = self.premium
        rate = p + min(max(0.0001 - p, -0.0005), 0.0005)
        return Decimal(f"{rate:.6f}")
