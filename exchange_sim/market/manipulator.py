"""Scripted manipulation episodes with ground truth (docs/exchange_sim_market.md §12).

A :class:`Manipulator` per symbol draws episode start times from Poisson processes and keeps its timed
actions in a heap that the symbol's event loop treats as boundaries. Its orders are real engine orders
(owner ``~manip``, PostOnly limits placed through :meth:`MatchingEngine.submit`), so they are tracked
orders in the book: anonymous volume queues around them and any fill is exact. Kinds:

* ``spoofing`` (manipulative): one large order 2–5 ticks behind the touch, repeated ``1 + Poisson(2)``
  times, each cancelled after U[1.5, 8] s or at once when the touch comes within one tick;
* ``layering`` (manipulative): 3–6 similar orders on adjacent ticks, placed within U[0.2, 3] s, held
  U[3, 20] s, cancelled together within 300 ms; half of the episodes send a genuine market order on the
  opposite side while the layer rests;
* ``benign_wall`` and ``benign_stack`` (hard negatives): the same shapes resting 60–600 s, never pulled
  when the touch approaches, so they get filled like honest liquidity.

While a manipulative order rests, market-order direction leans towards it by ``gullibility`` (the fake
demand draws real flow). Each finished episode becomes one JSON-able ground-truth record.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from exchange_sim.book import BUY, SELL
from exchange_sim.errors import ExchangeError
from exchange_sim.market.background import ASK, BID
from exchange_sim.market.latent import Draws
from exchange_sim.matching import EngineResult, OrderRequest

if TYPE_CHECKING:
    from exchange_sim.market.flow import SymbolMarket

MANIP_OWNER = "~manip"
KINDS = ("spoofing", "layering", "benign")


@dataclass
class Episode:
    """One episode under way: its orders, pending actions and parameters."""

    episode_id: str
    kind: str
    manipulative: bool
    side: str
    start_ms: int
    conditional: bool  # pulled when the touch comes within one tick
    params: dict[str, Any]
    orders: list[dict[str, Any]] = field(default_factory=list)
    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: int = 0
    aborted: bool = False
    end_reason: str = "scheduled"
    genuine: dict[str, Any] | None = None


class Manipulator:
    """The scripted manipulator of one symbol."""

    def __init__(self, market: SymbolMarket, gen: np.random.Generator, seed_path: str) -> None:
        self.market = market
        self.engine = market.engine
        self.symbol = market.symbol
        self.spec = market.spec
        self.mp = market.config.manipulation
        self.draws = Draws(gen)
        self.gen = gen
        self.seed_path = seed_path
        self._heap: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self._episodes = 0
        self.active: list[Episode] = []
        self.finished: list[dict[str, Any]] = []
        self.bias = 0.0
        self.live = False  # some conditional order rests: the loop must call after_event
        self.next_time = math.inf
        rates = (self.mp.spoof_per_hour, self.mp.layering_per_hour, self.mp.benign_per_hour)
        for kind, rate in zip(KINDS, rates, strict=True):
            if rate > 0:
                self._push(market.t + self.draws.exp() / rate * 3_600_000.0, "start", kind)

    # -- scheduling ----------------------------------------------------------------------------------

    def _push(self, t: float, action: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, action, payload))
        self.next_time = self._heap[0][0]

    def pause(self, ms: int) -> None:
        """Postpone every scheduled action by ``ms`` (the market skipped that much time)."""
        self._heap = [(t + ms, seq, action, payload) for t, seq, action, payload in self._heap]
        heapq.heapify(self._heap)
        self.next_time = self._heap[0][0] if self._heap else math.inf

    def run_due(self, t: float) -> list[EngineResult]:
        """Run every action due at or before ``t``."""
        out: list[EngineResult] = []
        while self._heap and self._heap[0][0] <= t:
            when, _, action, payload = heapq.heappop(self._heap)
            if action == "start":
                rate = {"spoofing": self.mp.spoof_per_hour, "layering": self.mp.layering_per_hour}.get(
                    payload, self.mp.benign_per_hour
                )
                self._push(when + self.draws.exp() / rate * 3_600_000.0, "start", payload)
                self._start(payload, when, out)
            else:
                episode, arg = payload
                episode.pending -= 1
                if not episode.aborted:
                    getattr(self, f"_do_{action}")(episode, arg, when, out)
                self._maybe_finish(episode, when)
        self.next_time = self._heap[0][0] if self._heap else math.inf
        self._update_flags()
        return out

    def _schedule(self, episode: Episode, t: float, action: str, arg: Any) -> None:
        episode.pending += 1
        self._push(t, action, (episode, arg))

    # -- episodes ------------------------------------------------------------------------------------

    def _touch(self, side: str) -> int | None:
        return self.market.book.best_bid() if side == BUY else self.market.book.best_ask()

    def _typical(self, side: str) -> float:
        touch = self._touch(side)
        if touch is None:
            return self.market.sbar
        return self.market.depth.typical_level(BID if side == BUY else ASK, touch, self.market.sbar)

    def _min_lots(self, notional: float, ticks: int) -> int:
        return math.ceil(notional / (ticks * self.market.tick * self.market.lot))

    def _start(self, kind: str, t: float, out: list[EngineResult]) -> None:
        d, mp = self.draws, self.mp
        side = BUY if d.unif() < 0.5 else SELL
        self._episodes += 1
        eid = f"{self.symbol}-{self._episodes}"
        if kind == "benign":
            kind = "benign_wall" if d.unif() < 0.5 else "benign_stack"
        manipulative = kind in ("spoofing", "layering")
        episode = Episode(eid, kind, manipulative, side, int(t), manipulative, {})
        self.active.append(episode)
        if kind == "spoofing":
            repeats = 1 + int(self.gen.poisson(2.0))
            episode.params = {"repeats": repeats, "multiple": [], "notional_usdt": [], "distance_ticks": []}
            self._schedule(episode, t, "spoof", 0)
        elif kind == "benign_wall":
            episode.params = {"repeats": 1, "multiple": [], "notional_usdt": [], "distance_ticks": []}
            self._schedule(episode, t, "spoof", 0)
        else:
            n = 3 + int(d.unif() * 4)
            touch = self._touch(side)
            if touch is None:
                episode.aborted = True
                episode.end_reason = "no_touch"
                self._maybe_finish(episode, t)
                return
            k0 = 1 + int(d.unif() * 3)
            sign = -1 if side == BUY else 1
            prices = [touch + sign * (k0 + i) for i in range(n)]
            level = self._typical(side)
            m = 3 + 7 * d.unif()
            b = max(m * level, self._min_lots(mp.layer_notional, prices[-1] if side == BUY else prices[0]))
            sizes = [max(1, round(b * (0.9 + 0.2 * d.unif()))) for _ in range(n)]
            span = 0.2 + 2.8 * d.unif()
            hold = (3 + 17 * d.unif()) if kind == "layering" else (60 + 240 * d.unif())
            episode.params = {
                "repeats": 1,
                "multiple": round(b / level, 3),
                "layers": n,
                "distance_ticks": k0,
                "base_qty": str(self.spec.lots_to_qty(round(b))),
                "notional_usdt": round(b * self.market.lot * prices[0] * self.market.tick, 2),
            }
            for i in range(n):
                self._schedule(episode, t + span * 1000.0 * i / (n - 1), "layer", (prices[i], sizes[i]))
            end = t + (span + hold) * 1000.0
            for _ in range(n):
                self._schedule(episode, end + 300.0 * d.unif(), "cancel_one", None)
            if kind == "layering" and d.unif() < mp.genuine_share:
                self._schedule(episode, t + (span + hold * d.unif()) * 1000.0, "genuine", None)

    def _place(
        self, episode: Episode, price: int, lots: int, t: float, out: list[EngineResult]
    ) -> str | None:
        spec = self.spec
        lots = min(lots, int(spec.max_order_qty / spec.qty_step))
        req = OrderRequest(
            self.symbol,
            episode.side,
            "Limit",
            spec.lots_to_qty(lots),
            spec.ticks_to_price(price),
            time_in_force="PostOnly",
        )
        try:
            result = self.engine.submit(MANIP_OWNER, req)
        except ExchangeError:
            return None  # e.g. outside the price band after a fast move: this order is skipped
        out.append(result)
        order = result.order
        if order is None or not order.is_open:
            return None
        record = {
            "order_id": order.order_id,
            "price": str(order.price),
            "qty": str(order.qty),
            "placed_ms": int(t),
            "cancelled_ms": None,
            "filled_qty": "0",
            "_lots": lots,
            "_ticks": price,
        }
        episode.orders.append(record)
        episode.live[order.order_id] = record
        return order.order_id

    def _do_spoof(self, episode: Episode, i: int, t: float, out: list[EngineResult]) -> None:
        d = self.draws
        touch = self._touch(episode.side)
        if touch is not None:
            k = 2 + int(d.unif() * 4)
            price = touch - k if episode.side == BUY else touch + k
            level = self._typical(episode.side)
            m = 5 + 15 * d.unif()
            lots = max(round(m * level), self._min_lots(1.2 * self.mp.spoof_notional, price))
            if price > 0 and self._place(episode, price, lots, t, out):
                p = episode.params
                p["multiple"].append(round(lots / level, 3))
                p["notional_usdt"].append(round(lots * self.market.lot * price * self.market.tick, 2))
                p["distance_ticks"].append(k)
                oid = episode.orders[-1]["order_id"]
                life = (1.5 + 6.5 * d.unif()) if episode.kind == "spoofing" else (60 + 540 * d.unif())
                self._schedule(episode, t + life * 1000.0, "cancel", oid)
                if i + 1 < episode.params["repeats"]:
                    self._schedule(episode, t + (life + 0.5 + 2.5 * d.unif()) * 1000.0, "spoof", i + 1)

    def _do_layer(self, episode: Episode, arg: tuple[int, int], t: float, out: list[EngineResult]) -> None:
        price, lots = arg
        touch = self._touch(episode.side)
        if touch is None or (price >= touch if episode.side == BUY else price <= touch):
            # The market has reached the layer's levels before it was complete: a manipulator pulls
            # what it placed, a benign stack just skips the level.
            if episode.conditional:
                self._abort(episode, t, "touch", out)
            return
        self._place(episode, price, lots, t, out)

    def _do_cancel(self, episode: Episode, oid: str, t: float, out: list[EngineResult]) -> None:
        self._cancel(episode, oid, t, out)

    def _do_cancel_one(self, episode: Episode, _: None, t: float, out: list[EngineResult]) -> None:
        if episode.live:
            self._cancel(episode, next(iter(episode.live)), t, out)

    def _do_genuine(self, episode: Episode, _: None, t: float, out: list[EngineResult]) -> None:
        spec = self.spec
        opposite = SELL if episode.side == BUY else BUY
        lots = max(1, round(self.market.sbar * (0.5 + 1.5 * self.draws.unif())))
        try:
            result = self.engine.submit(
                MANIP_OWNER, OrderRequest(self.symbol, opposite, "Market", spec.lots_to_qty(lots))
            )
        except ExchangeError:
            return
        out.append(result)
        order = result.order
        if order is not None:
            episode.genuine = {
                "order_id": order.order_id,
                "side": opposite,
                "qty": str(order.qty),
                "filled_qty": str(order.cum_exec_qty),
                "placed_ms": int(t),
            }

    def _cancel(self, episode: Episode, oid: str, t: float, out: list[EngineResult]) -> None:
        record = episode.live.pop(oid, None)
        if record is None:
            return
        entry = self.market.book.get(oid)
        if entry is None:  # fully traded while resting
            record["filled_qty"] = record["qty"]
            return
        record["filled_qty"] = str(self.spec.lots_to_qty(record["_lots"] - entry.leaves))
        try:
            out.append(self.engine.cancel(MANIP_OWNER, self.symbol, order_id=oid))
        except ExchangeError:  # pragma: no cover - the order was seen resting just above
            return
        record["cancelled_ms"] = int(t)

    def _abort(self, episode: Episode, t: float, reason: str, out: list[EngineResult]) -> None:
        episode.aborted = True
        episode.end_reason = reason
        for oid in list(episode.live):
            self._cancel(episode, oid, t, out)

    def _maybe_finish(self, episode: Episode, t: float) -> None:
        """Close ``episode`` into a ground-truth record once nothing rests and nothing is pending."""
        if episode not in self.active or episode.live or (episode.pending and not episode.aborted):
            return
        self.active.remove(episode)
        orders = [{k: v for k, v in o.items() if not k.startswith("_")} for o in episode.orders]
        record = {
            "episode_id": episode.episode_id,
            "symbol": self.symbol,
            "kind": episode.kind,
            "type": episode.kind,
            "manipulative": episode.manipulative,
            "side": episode.side,
            "start_ms": episode.start_ms,
            "end_ms": int(t),
            "orders": orders,
            "params": episode.params,
            "end_reason": episode.end_reason,
            "seed_path": self.seed_path,
        }
        if episode.genuine is not None:
            record["genuine_order"] = episode.genuine
        self.finished.append(record)

    # -- reactions -----------------------------------------------------------------------------------

    def _update_flags(self) -> None:
        bias = 0.0
        live = False
        for episode in self.active:
            if episode.conditional and episode.live:
                live = True
                bias += self.mp.gullibility if episode.side == BUY else -self.mp.gullibility
        self.live = live
        self.bias = max(-self.mp.gullibility, min(self.mp.gullibility, bias))

    def after_event(self, t: float) -> list[EngineResult]:
        """Detect fills and pull conditional orders the touch has come within one tick of."""
        out: list[EngineResult] = []
        book = self.market.book
        bb, ba = book.best_bid(), book.best_ask()
        for episode in [e for e in self.active if e.conditional and e.live]:
            for oid, record in list(episode.live.items()):
                entry = book.get(oid)
                if entry is None:
                    record["filled_qty"] = record["qty"]
                    del episode.live[oid]
                    continue
                touch = bb if episode.side == BUY else ba
                if touch is None:
                    continue
                if episode.kind == "layering":
                    # A layer starts 1-3 ticks behind the touch, so it is pulled only once the touch
                    # reaches one of its orders (it would be next to trade).
                    if touch == record["_ticks"]:
                        self._abort(episode, t, "touch", out)
                        break
                elif abs(touch - record["_ticks"]) <= 1:
                    self._cancel(episode, oid, t, out)
            self._maybe_finish(episode, t)
        self._update_flags()
        return out

    def before_sweep(self, side: int, lo: int, hi: int, t: float) -> list[EngineResult]:
        """Before a sweep of ``[lo, hi]`` on ``side``, manipulative orders there escape with probability ``escape``."""
        out: list[EngineResult] = []
        name = BUY if side == BID else SELL
        for episode in [e for e in self.active if e.manipulative and e.side == name and e.live]:
            for oid, record in list(episode.live.items()):
                if lo <= record["_ticks"] <= hi and self.draws.unif() < self.mp.escape:
                    self._cancel(episode, oid, t, out)
            self._maybe_finish(episode, t)
        self._update_flags()
        return out
