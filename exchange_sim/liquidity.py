"""A small scripted market source: a seeded ladder of resting orders with optional churn and trades.

It is what the CLI runs until the synthetic market generator (``exchange_sim/market/``) is plugged in,
and what the server tests use to have liquidity and book changes. All of its order flow goes through the
venue's :class:`~exchange_sim.matching.MatchingEngine` under owners that are not accounts (``seed`` for
resting orders, ``seed-taker`` for market orders), so trades, book deltas and user fills behave exactly
as with any other market participant. It also sets the mark price to the mid after each step.
"""

from __future__ import annotations

import random
from decimal import Decimal

from exchange_sim.book import BUY, SELL
from exchange_sim.errors import ExchangeError
from exchange_sim.events import OPEN_STATUSES
from exchange_sim.matching import EngineResult, MatchingEngine, OrderRequest

SEED_OWNER = "seed"
TAKER_OWNER = "seed-taker"
DEFAULT_MIDS = {"BTCUSDT": Decimal("64000"), "ETHUSDT": Decimal("3200"), "SOLUSDT": Decimal("150")}


class LadderMarket:
    """Resting ladders around a mid price per symbol, plus random adds, cancels and market orders.

    ``events_per_second`` is in exchange time, per symbol; ``trade_share`` is the share of those events
    that are market orders (0 keeps the book still apart from adds and cancels). A step never generates
    more than ``max_events_per_step`` events per symbol, so a clock jump cannot stall the driver.
    """

    def __init__(
        self,
        engine: MatchingEngine,
        *,
        seed: int = 42,
        mids: dict[str, Decimal] | None = None,
        levels: int = 60,
        events_per_second: float = 20.0,
        trade_share: float = 0.1,
        max_events_per_step: int = 50,
    ) -> None:
        self.engine = engine
        self.rng = random.Random(seed)
        mids = mids or DEFAULT_MIDS
        self.mids = {s: mids[s] for s in engine.instruments if s in mids}
        self.levels = levels
        self.events_per_second = events_per_second
        self.trade_share = trade_share
        self.max_events_per_step = max_events_per_step
        self._resting: dict[str, dict[str, None]] = {s: {} for s in self.mids}
        self._last_ms: int | None = None

    def advance(self, to_ms: int) -> list[EngineResult]:
        """Seed the ladders on the first call, then generate the events due up to ``to_ms``."""
        results: list[EngineResult] = []
        if self._last_ms is None:
            for symbol in self.mids:
                self._refill(symbol, results)
            self._last_ms = to_ms
        elapsed = max(0, to_ms - self._last_ms)
        self._last_ms = to_ms
        for symbol in self.mids:
            expected = self.events_per_second * elapsed / 1000
            count = min(self._poisson(expected), self.max_events_per_step)
            for _ in range(count):
                self._event(symbol, results)
            self._refill(symbol, results)
            book = self.engine.books[symbol]
            bid, ask = book.best_bid(), book.best_ask()
            if bid is not None and ask is not None:
                self.engine.set_mark_price(symbol, book.instrument.ticks_to_price(bid + ask) / 2)
        return results

    # -- events --------------------------------------------------------------------------------------

    def _event(self, symbol: str, results: list[EngineResult]) -> None:
        roll = self.rng.random()
        if roll < self.trade_share:
            side = self.rng.choice((BUY, SELL))
            spec = self.engine.instruments[symbol]
            qty = spec.min_order_qty * self.rng.randint(1, 5)
            self._submit(TAKER_OWNER, OrderRequest(symbol, side, "Market", qty), results)
        elif roll < self.trade_share + (1 - self.trade_share) * 0.4 and self._resting[symbol]:
            order_id = self.rng.choice(list(self._resting[symbol]))
            try:
                result = self.engine.cancel(SEED_OWNER, symbol, order_id=order_id)
            except ExchangeError:
                self._resting[symbol].pop(order_id, None)
                return
            self._track(symbol, result)
            results.append(result)
        else:
            self._add(symbol, self.rng.choice((BUY, SELL)), self.rng.randrange(self.levels), results)

    def _add(self, symbol: str, side: str, offset: int, results: list[EngineResult]) -> None:
        spec = self.engine.instruments[symbol]
        book = self.engine.books[symbol]
        mid_ticks = spec.price_to_ticks(spec.round_price(self.mids[symbol]))
        bid, ask = book.best_bid(), book.best_ask()
        # Quote from the opposite best so a new order never crosses: the ladder only adds liquidity.
        if side == BUY:
            top = (ask - 1) if ask is not None else mid_ticks - 1
            ticks = top - offset
        else:
            top = (bid + 1) if bid is not None else mid_ticks + 1
            ticks = top + offset
        if ticks <= 0:
            return
        qty = spec.min_order_qty * self.rng.randint(1, 20)
        self._submit(
            SEED_OWNER, OrderRequest(symbol, side, "Limit", qty, spec.ticks_to_price(ticks)), results
        )

    def _refill(self, symbol: str, results: list[EngineResult]) -> None:
        """Top each side up to ``levels`` occupied prices, filling the empty ticks nearest the touch."""
        book = self.engine.books[symbol]
        spec = self.engine.instruments[symbol]
        mid_ticks = spec.price_to_ticks(spec.round_price(self.mids[symbol]))
        for side in (BUY, SELL):
            book_side = book.side(side)
            missing = self.levels - len(book_side)
            if missing <= 0:
                continue
            if side == BUY:
                ask = book.best_ask()
                start, step = (ask - 1 if ask is not None else mid_ticks - 1), -1
            else:
                bid = book.best_bid()
                start, step = (bid + 1 if bid is not None else mid_ticks + 1), 1
            ticks = start
            while missing > 0 and ticks > 0:
                if book_side.get(ticks) is None:
                    qty = spec.min_order_qty * self.rng.randint(1, 20)
                    req = OrderRequest(symbol, side, "Limit", qty, spec.ticks_to_price(ticks))
                    self._submit(SEED_OWNER, req, results)
                    missing -= 1
                ticks += step

    def _submit(self, owner: str, req: OrderRequest, results: list[EngineResult]) -> None:
        try:
            result = self.engine.submit(owner, req)
        except ExchangeError:
            return  # e.g. outside the price band after the mark moved: skip this event
        self._track(req.symbol, result)
        results.append(result)

    def _track(self, symbol: str, result: EngineResult) -> None:
        for order in result.order_updates:
            if order.owner != SEED_OWNER:
                continue
            if order.order_status in OPEN_STATUSES:
                self._resting[symbol][order.order_id] = None
            else:
                self._resting[symbol].pop(order.order_id, None)

    def _poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        if lam > 30:
            return max(0, round(self.rng.gauss(lam, lam**0.5)))
        # Knuth's method: fine for the small means a driver step produces.
        limit, k, p = pow(2.718281828459045, -lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1
