"""The matching engine of the paper exchange: Bybit v5 linear order semantics over price-time books.

One :class:`MatchingEngine` owns a book per instrument and every open order, whoever placed it: an
account (an API key in the :class:`~exchange_sim.accounts.AccountRegistry`, with margin, positions and
fees) or a synthetic market participant (any other owner id: no margin, no position, no order limits).
Each command returns an :class:`EngineResult` with, in emission order, the executions (maker and
taker), one order snapshot per order whose state changed, and the public trades; the protocol layer
maps those to the REST reply and the ``execution``/``order``/``position``/``wallet`` pushes
(docs/exchange_protocol.md §6.8).

Rules implemented (docs/exchange_protocol.md §4): create-time validation in Bybit's order (§4.1 table); GTC, IOC, FOK
and PostOnly; Market orders as IOC limit orders bounded by a protection price (``pricing.py``);
reduce-only orders capped to the position not yet covered by resting reduce-only orders, and cut back
(``CancelByReduceOnly``) when fills shrink the position; one order message per state change (a
completing fill yields only ``Filled``). Self-matching is allowed (``smpType`` None, Bybit's default).

This module holds the queries, create, matching and reduce-only upkeep. The engine's other halves work
on its internals from their own modules: amend, cancel and cancel-all in ``amend_cancel.py`` (the
engine's methods of those names call it), conditional and TP/SL orders in ``conditional.py``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal

from exchange_sim import amend_cancel
from exchange_sim.accounts import (
    DEFAULT_MAKER_FEE_RATE,
    DEFAULT_TAKER_FEE_RATE,
    MONEY_QUANTUM,
    AccountRegistry,
)
from exchange_sim.book import ANON_OWNER, BUY, SELL, BookOrder, OrderBook
from exchange_sim.conditional import ConditionalOrders
from exchange_sim.errors import ExchangeError, RetCode
from exchange_sim.events import (
    CANCEL_BY_REDUCE_ONLY,
    CANCEL_UNKNOWN,
    CANCELLED,
    EC_CANCEL_FOR_NO_FULL_FILL,
    EC_NO_IMMEDIATE_QTY_TO_FILL,
    EC_POST_ONLY_WILL_TAKE_LIQUIDITY,
    EC_REACH_MARKET_PRICE_LIMIT,
    EXEC_TRADE,
    FILLED,
    PARTIALLY_FILLED,
    ZERO,
    Execution,
    IdFactory,
    Order,
    PublicTrade,
)
from exchange_sim.instruments import Instrument, get_instrument
from exchange_sim.pricing import check_price_band, market_protection
from exchange_sim.tpsl import TpslSpec, attach, check_attached

TIME_IN_FORCE = ("GTC", "IOC", "FOK", "PostOnly")
ANON_TAKER = "~anon-taker"  # owner of the synthetic market's own market orders and sweeps (no records kept)
MAX_ACTIVE_ORDERS = 500  # per account and symbol (110020)
CLOSED_ORDERS_KEPT = 500  # per account, like Bybit's realtime closed-order cache (§4.5)
_ORDER_LINK_ID = re.compile(r"[0-9A-Za-z_-]{1,36}")


def _params_error(text: str) -> ExchangeError:
    return ExchangeError(RetCode.PARAMS_ERROR, f"params error: {text}")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A ``POST /v5/order/create`` request after wire decoding (values already ``Decimal``)."""

    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None = None
    time_in_force: str = "GTC"
    reduce_only: bool = False
    order_link_id: str = ""
    position_idx: int = 0
    slippage_tolerance_type: str | None = None  # "TickSize" or "Percent", Market orders only
    slippage_tolerance: Decimal | None = None
    close_on_trigger: bool = False
    # A conditional order (exchange_sim/conditional.py): Untriggered until the price crosses.
    trigger_price: Decimal | None = None
    trigger_direction: int = 0
    trigger_by: str | None = None
    tpsl: TpslSpec = field(default_factory=TpslSpec)  # takeProfit/stopLoss attached to the order


@dataclass(slots=True)
class EngineResult:
    """What one command did: the subject order's final state and every event it caused, in order."""

    order: Order | None = None
    executions: list[Execution] = field(default_factory=list)
    order_updates: list[Order] = field(default_factory=list)
    trades: list[PublicTrade] = field(default_factory=list)


class MatchingEngine:
    """Books, open orders and matching for every instrument of the paper exchange."""

    def __init__(
        self,
        accounts: AccountRegistry,
        *,
        instruments: Mapping[str, Instrument] | None = None,
        clock: Callable[[], int] | None = None,
        ids: Callable[[], str] | None = None,
    ) -> None:
        self.accounts = accounts
        self.instruments = instruments if instruments is not None else accounts.instruments
        self.clock = clock if clock is not None else accounts.clock
        self.ids = ids if ids is not None else IdFactory(seed=0)
        # No changed-level tracking: nothing drains it here (the book feed diffs the top levels).
        self.books = {
            symbol: OrderBook(spec, track_changes=False) for symbol, spec in self.instruments.items()
        }
        self._open: dict[str, Order] = {}
        self._closed: dict[str, OrderedDict[str, Order]] = {}  # accounts only, newest last
        self._link_ids: dict[str, dict[str, str]] = {}  # owner → orderLinkId → orderId, kept forever
        self._last_trade: dict[str, tuple[int, str]] = {}  # symbol → (ticks, last non-zero direction)
        # Called as hook(symbol, maker side, ticks, lots) whenever anonymous volume trades, whoever the
        # taker is, so a synthetic market mirroring the anonymous volume stays exact (docs/exchange_sim_market.md §11).
        self.anonymous_fill_hook: Callable[[str, str, int, int], None] | None = None
        self._anon_takers = 0
        self.conditional = ConditionalOrders(self)

    # -- queries -----------------------------------------------------------------------------------

    def book(self, symbol: str) -> OrderBook:
        """The order book of ``symbol``."""
        get_instrument(symbol, self.instruments)
        return self.books[symbol]

    def open_orders(self, owner: str, symbol: str | None = None) -> list[Order]:
        """Snapshots of ``owner``'s open orders (optionally in one symbol), newest first."""
        found = [o for o in self._open.values() if o.owner == owner and symbol in (None, o.symbol)]
        return [o.snapshot() for o in sorted(found, key=lambda o: o.created_time, reverse=True)]

    def get_order(
        self, owner: str, order_id: str | None = None, order_link_id: str | None = None
    ) -> Order | None:
        """An open or recently closed order of ``owner``; ``order_id`` wins over ``order_link_id``."""
        order = self._find(owner, order_id, order_link_id, include_closed=True)
        return order.snapshot() if order is not None else None

    def reference_price(self, symbol: str) -> Decimal | None:
        """Mark price, else the book mid, else ``None``: what bands and market orders are measured from."""
        mark = self.accounts.marks.get(symbol)
        if mark is not None:
            return mark
        book = self.books[symbol]
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            return book.instrument.ticks_to_price(bid + ask) / 2
        return None

    def set_mark_price(self, symbol: str, price: Decimal) -> None:
        """Set the mark price used by price bands, market protection, margin and unrealised PnL."""
        get_instrument(symbol, self.instruments)
        self.accounts.marks.set_mark(symbol, price)

    def poll_triggers(self) -> EngineResult:
        """Fire the conditional and TP/SL orders the current last and mark prices have crossed.

        Commands fire what their own trades cross; this is for mark price moves (the venue calls it
        after every step of the market and after ``POST /sim/mark``).
        """
        return self.conditional.poll()

    def settle_funding(
        self, symbol: str, funding_rate: Decimal, mark: Decimal | None = None
    ) -> list[Execution]:
        """Settle one funding interval of ``symbol`` (see :meth:`AccountRegistry.settle_funding`)."""
        book = self.book(symbol)
        book.seq += 1
        return self.accounts.settle_funding(symbol, funding_rate, mark, seq=book.seq)

    # -- create ------------------------------------------------------------------------------------

    def submit(self, owner: str, req: OrderRequest) -> EngineResult:
        """Place an order (``/v5/order/create``). Raises :class:`ExchangeError` for a non-zero retCode.

        An accepted order may still end at once: PostOnly that would cross, unfillable FOK, IOC/Market
        remainders. Those outcomes are in the result's order snapshot, as Bybit reports them on the
        ``order`` stream after answering retCode 0.
        """
        spec = get_instrument(req.symbol, self.instruments)
        book = self.books[req.symbol]
        if req.side not in (BUY, SELL):
            raise _params_error(f"side invalid: {req.side!r} (Buy or Sell)")
        if req.order_type not in ("Limit", "Market"):
            raise _params_error(f"orderType invalid: {req.order_type!r} (Limit or Market)")
        if req.time_in_force not in TIME_IN_FORCE:
            raise _params_error(f"timeInForce invalid: {req.time_in_force!r} ({', '.join(TIME_IN_FORCE)})")
        if req.position_idx != 0:
            raise ExchangeError(RetCode.PARAMS_ERROR, "position idx not match position mode")
        if req.order_link_id and not _ORDER_LINK_ID.fullmatch(req.order_link_id):
            raise _params_error(
                f"orderLinkId {req.order_link_id!r} must be 1-36 characters from [0-9A-Za-z_-]"
            )
        is_market = req.order_type == "Market"
        tif = "IOC" if is_market else req.time_in_force  # Bybit: Market orders are always IOC
        lots = spec.validate_qty(req.qty, req.order_type)
        if req.tpsl.given and req.reduce_only:
            raise _params_error("takeProfit/stopLoss cannot be attached to a reduceOnly order")
        if req.trigger_price is not None:
            base = req.price if not is_market else req.trigger_price
            check_attached(spec, req.side, req.tpsl, base)
            return self.conditional.place(owner, spec, req, lots)
        reference = self.reference_price(req.symbol)
        if is_market:
            best = book.best_ask() if req.side == BUY else book.best_bid()
            limit, order_price = market_protection(
                spec, req.side, best, reference, req.slippage_tolerance_type, req.slippage_tolerance
            )
            cost_price = reference if reference is not None else order_price
        else:
            if req.price is None:
                raise _params_error("price is required for Limit orders")
            limit = spec.validate_price(req.price)
            order_price = cost_price = spec.ticks_to_price(limit)
            check_price_band(spec, req.side, order_price, reference)
        if not req.reduce_only and cost_price:
            spec.validate_notional(req.qty, cost_price)
        base = order_price if not is_market else (self._last_price(spec) or reference)
        check_attached(spec, req.side, req.tpsl, base)
        links = self._link_ids.setdefault(owner, {})
        if req.order_link_id and req.order_link_id in links:
            raise ExchangeError(RetCode.DUPLICATE_ORDER_LINK_ID, "OrderLinkedID is duplicate")
        account = self.accounts.get(owner)
        if req.reduce_only:
            room = self._reduce_only_room(spec, owner, req.side)
            if room <= 0:
                raise ExchangeError(
                    RetCode.REDUCE_ONLY_NOT_SATISFIED,
                    f"Reduce-only rule not satisfied: no {req.symbol} position left that a {req.side} "
                    "reduces (flat, same side, or already covered by resting reduce-only orders)",
                )
            lots = min(lots, room)
        ts = self.clock()
        order = Order(
            order_id=self.ids(),
            order_link_id=req.order_link_id,
            owner=owner,
            symbol=req.symbol,
            side=req.side,
            order_type=req.order_type,
            time_in_force=tif,
            price=order_price,
            qty=spec.lots_to_qty(lots),
            leaves_qty=spec.lots_to_qty(lots),
            reduce_only=req.reduce_only,
            created_time=ts,
            updated_time=ts,
            last_price_on_created=self._last_price(spec),
            slippage_tolerance_type=req.slippage_tolerance_type or "UNKNOWN",
            slippage_tolerance=req.slippage_tolerance,
            close_on_trigger=req.close_on_trigger,
        )
        attach(order, req.tpsl)
        if account is not None:
            if cost_price:
                account.check_order_margin(replace(order, price=cost_price))
            active = sum(1 for o in account.open_orders.values() if o.symbol == req.symbol)
            if active >= MAX_ACTIVE_ORDERS:
                raise ExchangeError(
                    RetCode.TOO_MANY_ACTIVE_ORDERS,
                    f"too many active orders: {active} open {req.symbol} orders (limit {MAX_ACTIVE_ORDERS})",
                )
        if req.order_link_id:
            links[req.order_link_id] = order.order_id
        result = EngineResult()
        self.conditional.watch_attached(order)  # before it can fill: fills on arrival set its TP/SL too
        self._execute(spec, book, order, lots, limit, result, ts)
        self.conditional.settle(result, (req.symbol,))
        return result

    def _execute(
        self,
        spec: Instrument,
        book: OrderBook,
        order: Order,
        lots: int,
        limit: int | None,
        result: EngineResult,
        ts: int,
    ) -> None:
        """Run a new (or re-priced) order against the book according to its time in force."""
        tif = order.time_in_force
        if tif == "PostOnly" and limit is not None and book.would_cross(order.side, limit):
            self._finish(order, CANCELLED, EC_POST_ONLY_WILL_TAKE_LIQUIDITY, CANCEL_UNKNOWN, ts)
        elif tif == "FOK" and self._fillable(book, order.side, limit, lots) < lots:
            self._finish(order, CANCELLED, EC_CANCEL_FOR_NO_FULL_FILL, CANCEL_UNKNOWN, ts)
        else:
            filled, stop = self._match(spec, book, order, lots, limit, result, ts)
            remaining = lots - filled
            if not remaining:
                order.order_status = FILLED
            elif stop == "reduce_only":
                self._finish(order, CANCELLED, EC_NO_IMMEDIATE_QTY_TO_FILL, CANCEL_BY_REDUCE_ONLY, ts)
            elif tif in ("IOC", "FOK"):
                reason = (
                    EC_REACH_MARKET_PRICE_LIMIT
                    if order.order_type == "Market" and stop == "limit"
                    else EC_NO_IMMEDIATE_QTY_TO_FILL
                )
                self._finish(order, CANCELLED, reason, CANCEL_UNKNOWN, ts)
            else:
                assert limit is not None
                book.add(order.order_id, order.owner, order.side, limit, remaining)
                self._open[order.order_id] = order
                account = self.accounts.get(order.owner)
                if account is not None:
                    account.open_orders[order.order_id] = order
        if not order.is_open:
            self._retire(order)
        result.order = order.snapshot()
        result.order_updates.append(result.order)
        self._enforce_reduce_only(spec, book, result, ts)

    # -- matching ----------------------------------------------------------------------------------

    def _fillable(self, book: OrderBook, side: str, limit: int | None, wanted: int) -> int:
        """Lots available to a ``side`` taker within ``limit`` (stops counting at ``wanted``)."""
        total = 0
        for level in book.side(SELL if side == BUY else BUY).levels():
            if limit is None or (level.price > limit if side == BUY else level.price < limit):
                break
            total += level.total
            if total >= wanted:
                break
        return total

    def _match(
        self,
        spec: Instrument,
        book: OrderBook,
        taker: Order,
        lots: int,
        limit: int | None,
        result: EngineResult,
        ts: int,
    ) -> tuple[int, str]:
        """Trade ``taker`` against the opposite side in price-time order.

        Returns the lots filled and why matching stopped: ``done``, ``empty`` (no more liquidity),
        ``limit`` (the next level is beyond the limit or protection price) or ``reduce_only`` (a
        reduce-only taker has nothing left to reduce).
        """
        buy = taker.side == BUY
        opposite = book.side(SELL if buy else BUY)
        taker_account = self.accounts.get(taker.owner)
        makers: OrderedDict[str, Order] = OrderedDict()
        filled = 0
        stop = "done"
        while filled < lots:
            level = opposite.best()
            if level is None or limit is None:
                stop = "empty"
                break
            if level.price > limit if buy else level.price < limit:
                stop = "limit"
                break
            want = lots - filled
            if taker.reduce_only:
                reducible = taker_account.reducible_qty(taker.symbol, taker.side) if taker_account else ZERO
                want = min(want, spec.qty_to_lots(reducible))
                if not want:
                    stop = "reduce_only"
                    break
            entry = level.front()
            if entry.owner == ANON_OWNER:
                n = min(want, entry.leaves)
                self._fill_anonymous(spec, book, taker, entry, n, level.price, result, ts)
                filled += n
                continue
            maker = self._open[entry.order_id]
            if maker.reduce_only and self._shrink_reduce_only(spec, book, maker, entry, result, ts):
                continue  # the maker was cut back or cancelled: look at the level again
            n = min(want, entry.leaves)
            self._fill(spec, book, taker, maker, entry, n, level.price, result, ts)
            makers[maker.order_id] = maker
            filled += n
        for maker in makers.values():
            snap = maker.snapshot()
            result.order_updates.append(snap)
        return filled, stop

    def _fill(
        self,
        spec: Instrument,
        book: OrderBook,
        taker: Order,
        maker: Order,
        entry: BookOrder,
        lots: int,
        ticks: int,
        result: EngineResult,
        ts: int,
    ) -> None:
        """One trade of ``lots`` at ``ticks`` between ``taker`` and the front order ``maker``."""
        gone = book.fill(entry, lots)
        seq = book.seq
        price = spec.ticks_to_price(ticks)
        qty = spec.lots_to_qty(lots)
        mark = self.accounts.marks.get(spec.symbol)
        for order, is_maker in ((maker, True), (taker, False)):
            self._record_fill(spec, order, is_maker, price, qty, ts, seq, mark, result)
        if gone:
            maker.order_status = FILLED
            self._retire(maker)
        result.trades.append(
            PublicTrade(
                trade_id=self.ids(),
                symbol=spec.symbol,
                price=price,
                qty=qty,
                taker_side=taker.side,
                time=ts,
                tick_direction=self._tick_direction(spec.symbol, ticks),
                seq=seq,
            )
        )
        self.accounts.marks.note_trade(spec.symbol, price)

    def _record_fill(
        self,
        spec: Instrument,
        order: Order,
        is_maker: bool,
        price: Decimal,
        qty: Decimal,
        ts: int,
        seq: int,
        mark: Decimal | None,
        result: EngineResult,
    ) -> None:
        """Book one side of a trade on ``order``: fee, PnL, cumulative fields and its execution record."""
        account = self.accounts.get(order.owner)
        if account is not None:
            effect = account.apply_trade(spec.symbol, order.side, price, qty, is_maker, ts, seq)
            fee, rate, closed, pnl = effect.fee, effect.fee_rate, effect.closed_size, effect.exec_pnl
        else:
            # Synthetic participants have no wallet; their fee is shown at the default rates.
            rate = DEFAULT_MAKER_FEE_RATE if is_maker else DEFAULT_TAKER_FEE_RATE
            fee, closed, pnl = (price * qty * rate).quantize(MONEY_QUANTUM), ZERO, ZERO
        order.cum_exec_qty += qty
        order.cum_exec_value += price * qty
        order.cum_exec_fee += fee
        order.closed_pnl += pnl
        order.leaves_qty -= qty
        order.updated_time = ts
        if order.leaves_qty:
            order.order_status = PARTIALLY_FILLED
        result.executions.append(
            Execution(
                exec_id=self.ids(),
                exec_type=EXEC_TRADE,
                owner=order.owner,
                symbol=spec.symbol,
                side=order.side,
                order_id=order.order_id,
                order_link_id=order.order_link_id,
                order_type=order.order_type,
                order_price=order.price,
                order_qty=order.qty,
                leaves_qty=order.leaves_qty,
                exec_price=price,
                exec_qty=qty,
                exec_value=price * qty,
                exec_fee=fee,
                fee_rate=rate,
                is_maker=is_maker,
                exec_time=ts,
                seq=seq,
                mark_price=mark,
                closed_size=closed,
                exec_pnl=pnl,
                create_type=order.create_type,
                stop_order_type=order.stop_order_type,
            )
        )

    def _fill_anonymous(
        self,
        spec: Instrument,
        book: OrderBook,
        taker: Order,
        entry: BookOrder,
        lots: int,
        ticks: int,
        result: EngineResult,
        ts: int,
    ) -> None:
        """One trade of ``lots`` at ``ticks`` against the front anonymous segment ``entry``.

        The maker side has no order record (it is aggregated anonymous volume); the taker is booked as
        in :meth:`_fill` unless it is the synthetic market's own taker, which keeps no records.
        """
        book.fill(entry, lots)
        seq = book.seq
        price = spec.ticks_to_price(ticks)
        qty = spec.lots_to_qty(lots)
        if taker.owner != ANON_TAKER:
            self._record_fill(
                spec, taker, False, price, qty, ts, seq, self.accounts.marks.get(spec.symbol), result
            )
        result.trades.append(
            PublicTrade(
                trade_id=self.ids(),
                symbol=spec.symbol,
                price=price,
                qty=qty,
                taker_side=taker.side,
                time=ts,
                tick_direction=self._tick_direction(spec.symbol, ticks),
                seq=seq,
            )
        )
        self.accounts.marks.note_trade(spec.symbol, price)
        if self.anonymous_fill_hook is not None:
            self.anonymous_fill_hook(spec.symbol, entry.side, ticks, lots)

    def market_anonymous(self, symbol: str, side: str, lots: int, limit: int, ts: int) -> EngineResult:
        """A synthetic market participant's aggressive order: ``lots`` against the book up to ``limit`` ticks.

        Skips request validation, margin and order records (the synthetic market already works in ticks
        and lots), but matches exactly like :meth:`submit`: strict price-time priority through anonymous
        segments and tracked (account or manipulator) orders, maker executions for tracked orders, one
        public trade per maker entry. Whatever cannot fill within ``limit`` is dropped (IOC).
        """
        spec = get_instrument(symbol, self.instruments)
        if side not in (BUY, SELL) or lots <= 0:
            raise ValueError(f"market_anonymous: need side Buy/Sell and lots > 0, got {side!r}, {lots}")
        book = self.books[symbol]
        self._anon_takers += 1
        taker = Order(
            order_id=f"~t{self._anon_takers}",
            order_link_id="",
            owner=ANON_TAKER,
            symbol=symbol,
            side=side,
            order_type="Market",
            time_in_force="IOC",
            price=ZERO,
            qty=ZERO,
            reduce_only=False,
            created_time=ts,
            updated_time=ts,
        )
        result = EngineResult()
        self._match(spec, book, taker, lots, limit, result, ts)
        if result.executions:
            self._enforce_reduce_only(spec, book, result, ts)
            self.conditional.settle(result, (symbol,))
        return result

    def _tick_direction(self, symbol: str, ticks: int) -> str:
        last = self._last_trade.get(symbol)
        if last is None:
            direction = base = "PlusTick"
        elif ticks == last[0]:
            direction = "ZeroMinusTick" if last[1] == "MinusTick" else "ZeroPlusTick"
            base = last[1]
        else:
            direction = base = "PlusTick" if ticks > last[0] else "MinusTick"
        self._last_trade[symbol] = (ticks, base)
        return direction

    def _last_price(self, spec: Instrument) -> Decimal | None:
        last = self._last_trade.get(spec.symbol)
        return spec.ticks_to_price(last[0]) if last is not None else None

    # -- reduce-only upkeep --------------------------------------------------------------------------

    def _reduce_only_room(self, spec: Instrument, owner: str, side: str, exclude: str | None = None) -> int:
        """Lots a new reduce-only ``side`` order may have: the position it reduces minus what resting
        reduce-only orders of that side already cover, so that together they can never flip it."""
        account = self.accounts.get(owner)
        if account is None:
            return 0
        covered = sum(
            o.leaves_qty
            for o in account.open_orders.values()
            if o.reduce_only and o.symbol == spec.symbol and o.side == side and o.order_id != exclude
        )
        return spec.qty_to_lots(account.reducible_qty(spec.symbol, side) - covered)

    def _shrink_reduce_only(
        self, spec: Instrument, book: OrderBook, order: Order, entry: BookOrder, result: EngineResult, ts: int
    ) -> bool:
        """Cut a resting reduce-only order down to what its position still allows; ``True`` if changed."""
        account = self.accounts.get(order.owner)
        allowed = spec.qty_to_lots(account.reducible_qty(order.symbol, order.side)) if account else 0
        if entry.leaves <= allowed:
            return False
        self._cut(spec, book, order, entry, entry.leaves - allowed, result, ts)
        return True

    def _enforce_reduce_only(self, spec: Instrument, book: OrderBook, result: EngineResult, ts: int) -> None:
        """After fills, keep each account's resting reduce-only orders within its position, newest cut first.

        Bybit cancels or shrinks such orders with ``cancelType: CancelByReduceOnly`` (docs/exchange_protocol.md §7.2);
        which order goes first is not documented, so the most recently queued is cut first.
        """
        owners = {e.owner for e in result.executions if e.owner in self.accounts}
        for owner in owners:
            account = self.accounts.get(owner)
            assert account is not None
            for side in (BUY, SELL):
                resting = [
                    o
                    for o in account.open_orders.values()
                    if o.symbol == spec.symbol and o.side == side and o.reduce_only
                ]
                if not resting:
                    continue
                entries = [e for o in resting if (e := book.get(o.order_id)) is not None]
                entries.sort(key=lambda e: -e.priority)
                allowed = spec.qty_to_lots(account.reducible_qty(spec.symbol, side))
                excess = sum(e.leaves for e in entries) - allowed
                for entry in entries:
                    if excess <= 0:
                        break
                    cut = min(excess, entry.leaves)
                    self._cut(spec, book, self._open[entry.order_id], entry, cut, result, ts)
                    excess -= cut

    def _cut(
        self,
        spec: Instrument,
        book: OrderBook,
        order: Order,
        entry: BookOrder,
        lots: int,
        result: EngineResult,
        ts: int,
    ) -> None:
        """Remove ``lots`` from a resting reduce-only order: shrink it in place, or cancel it if none remain."""
        qty = spec.lots_to_qty(lots)
        if lots >= entry.leaves:
            book.remove(order.order_id)
            self._finish(order, CANCELLED, order.reject_reason, CANCEL_BY_REDUCE_ONLY, ts)
            self._retire(order)
        else:
            book.reduce(order.order_id, entry.leaves - lots)
            order.qty -= qty
            order.leaves_qty -= qty
            order.updated_time = ts
        result.order_updates.append(order.snapshot())

    # -- amend, cancel (exchange_sim/amend_cancel.py) ----------------------------------------------

    def amend(
        self,
        owner: str,
        symbol: str,
        *,
        order_id: str | None = None,
        order_link_id: str | None = None,
        qty: Decimal | None = None,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        trigger_by: str | None = None,
        tpsl: TpslSpec | None = None,
    ) -> EngineResult:
        """``/v5/order/amend``: new total ``qty`` and/or ``price`` of an open order, its attached TP/SL, and
        for an Untriggered conditional order its trigger (see :meth:`ConditionalOrders.amend`).

        A price change or a quantity increase sends the order to the back of its (new) level; a
        decrease keeps its place. A re-priced GTC order that now crosses trades at once as a taker; a
        re-priced PostOnly order that would cross is cancelled with ``EC_PostOnlyWillTakeLiquidity``.
        A reduce-only order's new size is capped like at creation. Checks as on create: 10001 for
        filters, 110094, 110003, 110017, 110007; 110064 if ``qty`` does not exceed the filled qty;
        110059 for TP/SL changes on a partially filled order.
        """
        return amend_cancel.amend(
            self,
            owner,
            symbol,
            order_id=order_id,
            order_link_id=order_link_id,
            qty=qty,
            price=price,
            trigger_price=trigger_price,
            trigger_by=trigger_by,
            tpsl=tpsl,
        )

    def cancel(
        self, owner: str, symbol: str, *, order_id: str | None = None, order_link_id: str | None = None
    ) -> EngineResult:
        """``/v5/order/cancel``; an unknown, filled or cancelled order is 110001. An Untriggered
        conditional or TP/SL order ends ``Deactivated`` (a Full TP/SL also leaves the position)."""
        return amend_cancel.cancel(self, owner, symbol, order_id=order_id, order_link_id=order_link_id)

    def cancel_all(
        self,
        owner: str,
        symbol: str | None = None,
        order_filter: str | None = None,
        stop_order_type: str | None = None,
    ) -> EngineResult:
        """``/v5/order/cancel-all`` for one symbol or (``symbol=None``, settleCoin USDT) all; at most 500.

        Without ``order_filter`` every kind goes, the position's TP/SL included (as on Bybit);
        ``Order`` keeps conditional and TP/SL orders, ``StopOrder`` (narrowed by ``stop_order_type``)
        and ``tpslOrder`` cancel only those (see :func:`~exchange_sim.conditional.matches_filter`).
        """
        return amend_cancel.cancel_all(self, owner, symbol, order_filter, stop_order_type)

    # -- bookkeeping -----------------------------------------------------------------------------------

    def _find(
        self, owner: str, order_id: str | None, order_link_id: str | None, include_closed: bool
    ) -> Order | None:
        if not order_id and order_link_id:
            order_id = self._link_ids.get(owner, {}).get(order_link_id)
        if not order_id:
            return None
        order = self._open.get(order_id) or self.conditional.pending.get(order_id)
        if order is None and include_closed:
            closed = self._closed.get(owner)
            order = closed.get(order_id) if closed is not None else None
        return order if order is not None and order.owner == owner else None

    def _finish(self, order: Order, status: str, reason: str, cancel_type: str, ts: int) -> None:
        """Move ``order`` to a terminal status, releasing its remaining quantity."""
        order.cancelled_qty += order.leaves_qty
        order.leaves_qty = ZERO
        order.order_status = status
        order.reject_reason = reason
        order.cancel_type = cancel_type
        order.updated_time = ts

    def _unlist(self, order: Order) -> None:
        self._open.pop(order.order_id, None)
        account = self.accounts.get(order.owner)
        if account is not None:
            account.open_orders.pop(order.order_id, None)

    def _retire(self, order: Order) -> None:
        """Forget a terminal order as open; keep accounts' last 500 closed orders for lookups."""
        self._unlist(order)
        if order.owner in self.accounts:
            closed = self._closed.setdefault(order.owner, OrderedDict())
            closed[order.order_id] = order
            while len(closed) > CLOSED_ORDERS_KEPT:
                closed.popitem(last=False)
