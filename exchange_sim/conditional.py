"""Conditional orders, TP/SL orders and the positions' take-profit/stop-loss: protection that lives on the venue.

Three Bybit v5 features (docs/exchange_protocol.md §4.15–§4.17), held by one :class:`ConditionalOrders` per
matching engine:

* **Conditional orders** (``/v5/order/create`` with ``triggerPrice``, ``triggerDirection`` 1 rise / 2 fall,
  ``triggerBy`` LastPrice/MarkPrice/IndexPrice): ``stopOrderType`` Stop, ``createType`` CreateByStopOrder,
  ``Untriggered`` until the price crosses, then ``Triggered`` and placed as the Market or Limit order they
  describe (same ``orderId``/``orderLinkId``): ``New``/``PartiallyFilled``/``Filled``/``Cancelled``. A
  conditional order cancelled before it fires ends ``Deactivated``. No margin is reserved until it fires;
  one that then cannot be placed (margin, price band) ends ``Rejected``.
* **The position's TP/SL** (``/v5/position/trading-stop``, or ``takeProfit``/``stopLoss`` attached to an
  order that fills): in ``Full`` mode one TakeProfit and one StopLoss order per position, quantity ``0``
  (the whole position at trigger time), reduce-only and close-on-trigger, shown as the position's
  ``takeProfit``/``stopLoss``; setting a new price amends the same order, ``"0"`` removes it. In
  ``Partial`` mode each call (or each attached order) adds a PartialTakeProfit/PartialStopLoss pair of a
  given size; when one of a pair fires its twin is cancelled (OCO).
* **Upkeep after every engine command**: fills of orders with attached TP/SL set them; a position that is
  flat (or changed side) loses its TP/SL orders (``Deactivated``, ``CancelByTpSlTsClear``); due triggers
  fire one at a time, each re-reading the prices its own fills moved, until none is due.

A fired reduce-only order never increases a position: its size is capped to what the position still
allows (close-on-trigger first cuts other resting reduce-only orders of that side so the protection gets
the whole position), and it is cancelled (``CancelByReduceOnly``) when nothing is left to reduce. Triggers
compare the last traded price or the mark price (IndexPrice = mark here) with ``>=`` (rise) or ``<=``
(fall), so an order fires exactly once, at the first command or mark update that crosses it.

This module works on the engine's internals (books, open orders, ``_execute``): it is the engine's second
half, split off for size, not a separate layer.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

from exchange_sim.book import BUY, SELL
from exchange_sim.errors import ExchangeError, RetCode
from exchange_sim.events import (
    CANCEL_BY_OCO_SL_BY_TP,
    CANCEL_BY_OCO_TP_BY_SL,
    CANCEL_BY_REDUCE_ONLY,
    CANCEL_BY_TPSL_CLEAR,
    CANCEL_BY_USER,
    CANCEL_UNKNOWN,
    CANCELLED,
    CREATE_TYPES,
    DEACTIVATED,
    EC_NO_IMMEDIATE_QTY_TO_FILL,
    EC_OTHERS,
    FALL,
    NEW,
    PARTIAL_STOP_LOSS,
    PARTIAL_TAKE_PROFIT,
    REJECTED,
    RISE,
    STOP_LOSS,
    STOP_ORDER,
    TAKE_PROFIT,
    TPSL_KINDS,
    TRIGGERED,
    UNTRIGGERED,
    ZERO,
    Order,
)
from exchange_sim.instruments import Instrument, get_instrument
from exchange_sim.pricing import check_price_band, market_protection
from exchange_sim.tpsl import (
    TPSL_MODES,
    TpslSpec,
    TradingStopRequest,
    attach,
    check_attached,
    check_order_type,
    check_side_of_base,
    check_trigger_by,
    params_error,
)

if TYPE_CHECKING:
    from exchange_sim.matching import EngineResult, MatchingEngine, OrderRequest

MAX_STOP_ORDERS = 10  # active conditional (Stop) orders per account and symbol (110009)
MAX_PARTIAL_TPSL = 20  # Partial TP/SL orders per position (110061)
_FULL_KINDS = (TAKE_PROFIT, STOP_LOSS)
_OCO_CANCEL = {
    TAKE_PROFIT: CANCEL_BY_OCO_SL_BY_TP,
    PARTIAL_TAKE_PROFIT: CANCEL_BY_OCO_SL_BY_TP,
    STOP_LOSS: CANCEL_BY_OCO_TP_BY_SL,
    PARTIAL_STOP_LOSS: CANCEL_BY_OCO_TP_BY_SL,
}


def _opposite(side: str) -> str:
    return SELL if side == BUY else BUY


class ConditionalOrders:
    """The untriggered orders of one matching engine and the TP/SL they implement."""

    def __init__(self, engine: MatchingEngine) -> None:
        self.engine = engine
        self.pending: dict[str, Order] = {}  # Untriggered, by orderId, oldest first
        self._by_symbol: dict[str, dict[str, Order]] = {}
        self._attached: dict[str, Order] = {}  # open orders with takeProfit/stopLoss, by orderId
        self._children: dict[str, dict[str, Order]] = {}  # parent orderId → its Partial TP/SL by kind
        self._twins: dict[str, str] = {}  # Partial TP ↔ SL of one pair (OCO)

    # -- queries -----------------------------------------------------------------------------------

    def price(self, symbol: str, trigger_by: str) -> Decimal | None:
        """The price a trigger of ``trigger_by`` compares with: last traded, or mark (= index here)."""
        if trigger_by == "LastPrice":
            return self.engine._last_price(self.engine.instruments[symbol])
        return self.engine.accounts.marks.get(symbol)

    def of(
        self, owner: str, symbol: str, kinds: frozenset[str] | tuple[str, ...] | None = None
    ) -> list[Order]:
        """``owner``'s Untriggered orders in ``symbol`` (optionally of some ``stopOrderType`` kinds)."""
        return [
            o
            for o in self._by_symbol.get(symbol, {}).values()
            if o.owner == owner and (kinds is None or o.stop_order_type in kinds)
        ]

    # -- create ------------------------------------------------------------------------------------

    def place(self, owner: str, spec: Instrument, req: OrderRequest, lots: int) -> EngineResult:
        """A conditional order (``triggerPrice`` given): validated, stored ``Untriggered``; nothing trades."""
        from exchange_sim.matching import EngineResult  # the engine module imports this one

        engine = self.engine
        assert req.trigger_price is not None
        trigger_ticks = spec.validate_price(req.trigger_price, "triggerPrice")
        trigger_price = spec.ticks_to_price(trigger_ticks)
        if req.trigger_direction not in (RISE, FALL):
            raise params_error(
                f"triggerDirection must be 1 (rise) or 2 (fall) with triggerPrice, got {req.trigger_direction}"
            )
        trigger_by = check_trigger_by("triggerBy", req.trigger_by)
        if req.order_type == "Limit":
            if req.price is None:
                raise params_error("price is required for Limit orders")
            price = spec.ticks_to_price(spec.validate_price(req.price))
        else:
            price = ZERO
        if not req.reduce_only:
            spec.validate_notional(spec.lots_to_qty(lots), price or trigger_price)
        links = engine._link_ids.setdefault(owner, {})
        if req.order_link_id and req.order_link_id in links:
            raise ExchangeError(RetCode.DUPLICATE_ORDER_LINK_ID, "OrderLinkedID is duplicate")
        self._check_direction(spec.symbol, req.trigger_direction, trigger_price, trigger_by)
        if owner in engine.accounts and len(self.of(owner, spec.symbol, (STOP_ORDER,))) >= MAX_STOP_ORDERS:
            raise ExchangeError(
                RetCode.TOO_MANY_STOP_ORDERS,
                f"The number of stop orders exceeds the maximum allowable limit: {MAX_STOP_ORDERS} "
                f"untriggered {spec.symbol} conditional orders",
            )
        ts = engine.clock()
        order = Order(
            order_id=engine.ids(),
            order_link_id=req.order_link_id,
            owner=owner,
            symbol=spec.symbol,
            side=req.side,
            order_type=req.order_type,
            time_in_force="IOC" if req.order_type == "Market" else req.time_in_force,
            price=price,
            qty=spec.lots_to_qty(lots),
            leaves_qty=spec.lots_to_qty(lots),
            reduce_only=req.reduce_only,
            close_on_trigger=req.close_on_trigger,
            created_time=ts,
            updated_time=ts,
            order_status=UNTRIGGERED,
            last_price_on_created=engine._last_price(spec),
            stop_order_type=STOP_ORDER,
            create_type=CREATE_TYPES[STOP_ORDER],
            trigger_price=trigger_price,
            trigger_direction=req.trigger_direction,
            trigger_by=trigger_by,
        )
        attach(order, req.tpsl)
        if req.order_link_id:
            links[req.order_link_id] = order.order_id
        self._add(order)
        snapshot = order.snapshot()
        result = EngineResult(order=snapshot, order_updates=[snapshot])
        return result

    def _check_direction(self, symbol: str, direction: int, trigger: Decimal, trigger_by: str) -> None:
        """110092/110093: a rise trigger at or below the current price (fall: at or above) would fire at once."""
        current = self.price(symbol, trigger_by)
        if current is None:
            return
        if direction == RISE and trigger <= current:
            raise ExchangeError(
                RetCode.EXPECT_RISING,
                f"expect Rising, but trigger_price[{trigger}] <= current[{current}]??{trigger_by}",
            )
        if direction == FALL and trigger >= current:
            raise ExchangeError(
                RetCode.EXPECT_FALLING,
                f"expect Falling, but trigger_price[{trigger}] >= current[{current}]??{trigger_by}",
            )

    def _add(self, order: Order) -> None:
        self.pending[order.order_id] = order
        self._by_symbol.setdefault(order.symbol, {})[order.order_id] = order

    def _remove(self, order: Order) -> None:
        self.pending.pop(order.order_id, None)
        self._by_symbol.get(order.symbol, {}).pop(order.order_id, None)
        twin = self._twins.pop(order.order_id, None)
        if twin is not None:
            self._twins.pop(twin, None)

    def _new_tpsl_order(
        self,
        owner: str,
        symbol: str,
        kind: str,
        side: str,
        trigger: Decimal,
        trigger_by: str,
        qty: Decimal,
        order_type: str = "Market",
        limit_price: Decimal | None = None,
        parent_link_id: str = "",
    ) -> Order:
        """A TP/SL order that closes a position of the side opposite to ``side`` (``side`` is the closing side)."""
        ts = self.engine.clock()
        is_tp = kind in (TAKE_PROFIT, PARTIAL_TAKE_PROFIT)
        # A long (closed by a Sell) takes profit as the price rises; a short the other way.
        direction = RISE if is_tp == (side == SELL) else FALL
        order = Order(
            order_id=self.engine.ids(),
            order_link_id="",
            owner=owner,
            symbol=symbol,
            side=side,
            order_type=order_type,
            time_in_force="IOC" if order_type == "Market" else "GTC",
            price=limit_price if limit_price is not None else ZERO,
            qty=qty,
            leaves_qty=qty,
            reduce_only=True,
            close_on_trigger=kind in _FULL_KINDS,
            created_time=ts,
            updated_time=ts,
            order_status=UNTRIGGERED,
            stop_order_type=kind,
            create_type=CREATE_TYPES[kind],
            trigger_price=trigger,
            trigger_direction=direction,
            trigger_by=trigger_by,
            parent_order_link_id=parent_link_id,
            tpsl_mode="Full" if kind in _FULL_KINDS else "Partial",
        )
        self._add(order)
        return order

    # -- trading-stop ------------------------------------------------------------------------------

    def trading_stop(self, owner: str, req: TradingStopRequest) -> EngineResult:
        """``/v5/position/trading-stop``: set, replace or remove the position's TP/SL (Full), or add a
        Partial pair. Raises 10001 (no position, wrong side of the price, bad field), 34040 (nothing
        changes), 110058 (Partial size above the position), 110061 (too many Partial TP/SL)."""
        from exchange_sim.matching import EngineResult

        spec = get_instrument(req.symbol, self.engine.instruments)
        if req.position_idx != 0:
            raise ExchangeError(RetCode.PARAMS_ERROR, "position idx not match position mode")
        account = self.engine.accounts.get(owner)
        pos = account.positions.get(spec.symbol) if account is not None else None
        if pos is None or not pos.qty:
            raise ExchangeError(RetCode.PARAMS_ERROR, "can not set tp/sl/ts for zero position")
        tpsl = req.tpsl
        mode = tpsl.tpsl_mode or "Full"
        if mode not in TPSL_MODES:
            raise params_error(f"tpslMode invalid: {mode!r} (Full or Partial)")
        partial = mode == "Partial"
        closing = _opposite(pos.side)
        result = EngineResult()
        checked: list[tuple[str, Decimal | None, str, str | None, Decimal | None]] = []
        for kind, price, by_name, by, type_name, order_type, limit_name, limit in (
            (TAKE_PROFIT, tpsl.take_profit, "tpTriggerBy", tpsl.tp_trigger_by, "tpOrderType",
             tpsl.tp_order_type, "tpLimitPrice", tpsl.tp_limit_price),
            (STOP_LOSS, tpsl.stop_loss, "slTriggerBy", tpsl.sl_trigger_by, "slOrderType",
             tpsl.sl_order_type, "slLimitPrice", tpsl.sl_limit_price),
        ):  # fmt: skip
            trigger_by = check_trigger_by(by_name, by)
            if by is None and not partial:  # a Full TP/SL keeps its trigger type unless a new one is given
                (existing,) = self.of(owner, spec.symbol, (kind,)) or (None,)
                trigger_by = existing.trigger_by if existing is not None else trigger_by
            check_order_type(spec, partial, type_name, order_type, limit_name, limit)
            if price is not None and price:
                spec.validate_price(price, "takeProfit" if kind == TAKE_PROFIT else "stopLoss")
                label = ("Partial" if partial else "") + kind
                base = self.price(spec.symbol, trigger_by)
                check_side_of_base(label, pos.side, kind, price, base, trigger_by)
            elif price is not None and partial:
                raise params_error(
                    f"{'takeProfit' if kind == TAKE_PROFIT else 'stopLoss'} 0: a Partial TP/SL is removed by "
                    "cancelling its order, not by setting 0"
                )
            checked.append((kind, price, trigger_by if by is not None else "", order_type, limit))
        if partial:
            self._add_partial_pair(owner, spec, pos.size, closing, req, checked, result)
        else:
            for name, value in (("tpSize", req.tp_size), ("slSize", req.sl_size)):
                if value is not None and value:
                    raise params_error(f"{name} is only valid with tpslMode Partial")
            changed = self._set_full(owner, spec, {k: (p, by) for k, p, by, _, _ in checked}, result)
            if not changed:
                raise ExchangeError(
                    RetCode.NOT_MODIFIED,
                    "not modified: the position's TP/SL already have these values, or none was given",
                )
        result.order = result.order_updates[-1] if result.order_updates else None
        return result

    def _add_partial_pair(
        self,
        owner: str,
        spec: Instrument,
        position_size: Decimal,
        closing: str,
        req: TradingStopRequest,
        checked: list[tuple[str, Decimal | None, str, str | None, Decimal | None]],
        result: EngineResult,
    ) -> None:
        sizes = {TAKE_PROFIT: req.tp_size, STOP_LOSS: req.sl_size}
        wanted = [(kind, price) for kind, price, *_ in checked if price is not None]
        if not wanted:
            raise ExchangeError(RetCode.NOT_MODIFIED, "not modified: neither takeProfit nor stopLoss given")
        for kind, _ in wanted:
            if sizes[kind] is None:
                raise params_error(
                    f"{'tpSize' if kind == TAKE_PROFIT else 'slSize'} is required in Partial mode"
                )
        if len(wanted) == 2 and req.tp_size != req.sl_size:
            raise params_error(f"tpSize {req.tp_size} and slSize {req.sl_size} must be equal")
        size = sizes[wanted[0][0]]
        assert size is not None
        spec.validate_qty(size, "Market", "tpSize" if wanted[0][0] == TAKE_PROFIT else "slSize")
        if size > position_size:
            raise ExchangeError(
                RetCode.TPSL_SIZE_TOO_LARGE,
                f"You can't set take profit and stop loss due to insufficient size of remaining position size: "
                f"{size} > position {position_size}",
            )
        existing = len(self.of(owner, spec.symbol, (PARTIAL_TAKE_PROFIT, PARTIAL_STOP_LOSS)))
        if existing + len(wanted) > MAX_PARTIAL_TPSL:
            raise ExchangeError(
                RetCode.TOO_MANY_PARTIAL_TPSL,
                f"Not allowed to have more than {MAX_PARTIAL_TPSL} TP/SLs under Partial tpSlMode "
                f"({existing} exist)",
            )
        made = []
        for kind, price, by, order_type, limit in checked:
            if price is None:
                continue
            partial_kind = PARTIAL_TAKE_PROFIT if kind == TAKE_PROFIT else PARTIAL_STOP_LOSS
            made.append(
                self._new_tpsl_order(
                    owner, spec.symbol, partial_kind, closing, price, by or "LastPrice", size,
                    order_type or "Market", limit,
                )
            )  # fmt: skip
        if len(made) == 2:
            self._twins[made[0].order_id] = made[1].order_id
            self._twins[made[1].order_id] = made[0].order_id
        result.order_updates.extend(o.snapshot() for o in made)

    def _set_full(
        self,
        owner: str,
        spec: Instrument,
        changes: dict[str, tuple[Decimal | None, str]],
        result: EngineResult,
    ) -> bool:
        """Apply Full TP/SL ``changes`` (kind → (price, triggerBy); price None: unchanged, 0: remove).

        Creates, amends or deactivates the TakeProfit/StopLoss orders and the position's fields; returns
        whether anything changed. A flat position gets nothing.
        """
        account = self.engine.accounts.get(owner)
        pos = account.positions.get(spec.symbol) if account is not None else None
        if pos is None or not pos.qty:
            return False
        closing = _opposite(pos.side)
        ts = self.engine.clock()
        changed = False
        for kind, (price, trigger_by) in changes.items():
            (existing,) = self.of(owner, spec.symbol, (kind,)) or (None,)
            current_by = pos.tp_trigger_by if kind == TAKE_PROFIT else pos.sl_trigger_by
            new_by = trigger_by or (existing.trigger_by if existing is not None else current_by)
            if price is None:
                if existing is None or new_by == existing.trigger_by:
                    continue
                price = existing.trigger_price
            if not price:
                if existing is not None:
                    self.deactivate(existing, CANCEL_BY_USER, result)
                    changed = True
                continue
            if existing is not None:
                if existing.trigger_price == price and existing.trigger_by == new_by:
                    continue
                existing.trigger_price = price
                existing.trigger_by = new_by
                existing.updated_time = ts
                result.order_updates.append(existing.snapshot())
            else:
                existing = self._new_tpsl_order(owner, spec.symbol, kind, closing, price, new_by, ZERO)
                result.order_updates.append(existing.snapshot())
            if kind == TAKE_PROFIT:
                pos.take_profit, pos.tp_trigger_by = price, new_by
            else:
                pos.stop_loss, pos.sl_trigger_by = price, new_by
            changed = True
        if changed:
            pos.updated_time = ts
        return changed

    # -- cancel, amend -----------------------------------------------------------------------------

    def deactivate(self, order: Order, cancel_type: str, result: EngineResult) -> None:
        """End an Untriggered order (``Deactivated``); a Full TP/SL also leaves the position's fields."""
        self._remove(order)
        engine = self.engine
        engine._finish(order, DEACTIVATED, order.reject_reason, cancel_type, engine.clock())
        engine._retire(order)
        if order.stop_order_type in _FULL_KINDS:
            account = engine.accounts.get(order.owner)
            pos = account.positions.get(order.symbol) if account is not None else None
            if pos is not None:
                if order.stop_order_type == TAKE_PROFIT:
                    pos.take_profit = None
                else:
                    pos.stop_loss = None
                pos.updated_time = order.updated_time
        result.order_updates.append(order.snapshot())

    def amend(
        self,
        order: Order,
        *,
        qty: Decimal | None,
        price: Decimal | None,
        trigger_price: Decimal | None,
        trigger_by: str | None,
        tpsl: TpslSpec,
        result: EngineResult,
    ) -> None:
        """``/v5/order/amend`` of an Untriggered order: qty, price (Limit), trigger price/type, attached TP/SL.

        A Full TP/SL order's new trigger is the position's new takeProfit/stopLoss; its quantity is the
        whole position and cannot be amended.
        """
        spec = get_instrument(order.symbol, self.engine.instruments)
        full = order.stop_order_type in _FULL_KINDS
        if qty is not None and full:
            raise params_error("the qty of a Full TP/SL order is the whole position and cannot be amended")
        if price is not None and order.order_type != "Limit":
            raise params_error("price can only be amended on a Limit conditional order")
        new_qty = spec.lots_to_qty(spec.validate_qty(qty, order.order_type)) if qty is not None else order.qty
        new_price = spec.ticks_to_price(spec.validate_price(price)) if price is not None else order.price
        new_trigger = (
            spec.ticks_to_price(spec.validate_price(trigger_price, "triggerPrice"))
            if trigger_price is not None
            else order.trigger_price
        )
        assert new_trigger is not None
        new_by = check_trigger_by("triggerBy", trigger_by) if trigger_by is not None else order.trigger_by
        if tpsl.given and order.stop_order_type != STOP_ORDER:
            raise params_error("takeProfit/stopLoss cannot be attached to a TP/SL order")
        if tpsl.given:
            check_attached(spec, order.side, tpsl, new_price or new_trigger)
        unchanged = (new_qty, new_price, new_trigger, new_by) == (
            order.qty, order.price, order.trigger_price, order.trigger_by
        )  # fmt: skip
        if unchanged and not tpsl.given:
            raise params_error("amend changes nothing: qty, price and trigger equal the order's")
        if new_trigger != order.trigger_price or new_by != order.trigger_by:
            if order.stop_order_type == STOP_ORDER:
                self._check_direction(order.symbol, order.trigger_direction, new_trigger, new_by)
            else:
                account = self.engine.accounts.get(order.owner)
                pos = account.positions.get(order.symbol) if account is not None else None
                if pos is not None and pos.qty:
                    check_side_of_base(
                        order.stop_order_type, pos.side, order.stop_order_type, new_trigger,
                        self.price(order.symbol, new_by), new_by,
                    )  # fmt: skip
        if not order.reduce_only and (new_qty != order.qty or new_price != order.price):
            spec.validate_notional(new_qty, new_price or new_trigger)
        order.qty = order.leaves_qty = new_qty
        order.price, order.trigger_price, order.trigger_by = new_price, new_trigger, new_by
        attach(order, tpsl, amend=True)
        order.updated_time = self.engine.clock()
        if full:
            account = self.engine.accounts.get(order.owner)
            pos = account.positions.get(order.symbol) if account is not None else None
            if pos is not None:
                if order.stop_order_type == TAKE_PROFIT:
                    pos.take_profit, pos.tp_trigger_by = new_trigger, new_by
                else:
                    pos.stop_loss, pos.sl_trigger_by = new_trigger, new_by
                pos.updated_time = order.updated_time
        result.order = order.snapshot()
        result.order_updates.append(result.order)

    # -- upkeep after every command ----------------------------------------------------------------

    def watch_attached(self, order: Order) -> None:
        """Remember an order with attached TP/SL while it can fill (called when it is placed or amended)."""
        if order.has_attached_tpsl and order.is_open:
            self._attached[order.order_id] = order
        else:
            self._attached.pop(order.order_id, None)

    def settle(self, result: EngineResult, symbols: tuple[str, ...] | list[str]) -> None:
        """After a command: apply attached TP/SL of new fills, drop TP/SL of closed positions, fire due
        triggers in ``symbols`` (and in the symbols their fills touch), until nothing more happens."""
        if not self.pending and not self._attached:
            return
        done = 0
        watch = dict.fromkeys(symbols)
        while True:
            fresh = result.executions[done:]
            done = len(result.executions)
            touched: dict[tuple[str, str], None] = {}
            for ex in fresh:
                watch[ex.symbol] = None
                if ex.owner in self.engine.accounts:
                    touched[(ex.owner, ex.symbol)] = None
                parent = self._attached.get(ex.order_id)
                if parent is not None:
                    self._apply_attached(parent, ex.exec_qty, result)
            for owner, symbol in touched:
                self._sweep(owner, symbol, result)
            due = self._first_due(watch)
            if due is None:
                break
            self._fire(due, result)  # its fills are the next round's fresh executions
        for order_id in [i for i, o in self._attached.items() if not o.is_open]:
            del self._attached[order_id]
            self._children.pop(order_id, None)  # its Partial TP/SL no longer grow

    def poll(self) -> EngineResult:
        """Fire whatever is due in any symbol (after the mark price moved); returns what happened."""
        from exchange_sim.matching import EngineResult

        result = EngineResult()
        self.settle(result, [s for s, orders in self._by_symbol.items() if orders])
        return result

    def _first_due(self, symbols: dict[str, None]) -> Order | None:
        for symbol in symbols:
            orders = self._by_symbol.get(symbol)
            if not orders:
                continue
            last = self.price(symbol, "LastPrice")
            mark = self.engine.accounts.marks.get(symbol)
            for order in orders.values():
                current = last if order.trigger_by == "LastPrice" else mark
                trigger = order.trigger_price
                if current is None or trigger is None:
                    continue
                if (order.trigger_direction == RISE and current >= trigger) or (
                    order.trigger_direction == FALL and current <= trigger
                ):
                    return order
        return None

    def _sweep(self, owner: str, symbol: str, result: EngineResult) -> None:
        """TP/SL orders of a position that is gone (flat) or now on the other side are deactivated."""
        account = self.engine.accounts.get(owner)
        if account is None:
            return
        pos = account.positions.get(symbol)
        for order in self.of(owner, symbol, TPSL_KINDS):
            if pos is None or not pos.qty or order.side == pos.side:
                self.deactivate(order, CANCEL_BY_TPSL_CLEAR, result)

    def _apply_attached(self, parent: Order, filled: Decimal, result: EngineResult) -> None:
        """A fill of ``filled`` on an order with attached TP/SL: Full sets the position's TP/SL; Partial adds
        (or grows) the parent's own TP/SL pair by the filled quantity."""
        spec = self.engine.instruments[parent.symbol]
        account = self.engine.accounts.get(parent.owner)
        pos = account.positions.get(parent.symbol) if account is not None else None
        if pos is None or not pos.qty or pos.side != parent.side:
            return  # the fill reduced a position of the other side: nothing of this side to protect
        if parent.tpsl_mode != "Partial":
            changes: dict[str, tuple[Decimal | None, str]] = {}
            if parent.take_profit:
                changes[TAKE_PROFIT] = (parent.take_profit, parent.tp_trigger_by)
            if parent.stop_loss:
                changes[STOP_LOSS] = (parent.stop_loss, parent.sl_trigger_by)
            self._set_full(parent.owner, spec, changes, result)
            return
        children = self._children.setdefault(parent.order_id, {})
        ts = self.engine.clock()
        for kind, price, by, order_type, limit in (
            (PARTIAL_TAKE_PROFIT, parent.take_profit, parent.tp_trigger_by, parent.tp_order_type,
             parent.tp_limit_price),
            (PARTIAL_STOP_LOSS, parent.stop_loss, parent.sl_trigger_by, parent.sl_order_type,
             parent.sl_limit_price),
        ):  # fmt: skip
            if not price:
                continue
            child = children.get(kind)
            if child is not None and child.order_id in self.pending:
                child.qty += filled
                child.leaves_qty += filled
                child.updated_time = ts
            else:
                child = self._new_tpsl_order(
                    parent.owner, parent.symbol, kind, _opposite(parent.side), price, by, filled,
                    order_type or "Market", limit, parent.order_link_id,
                )  # fmt: skip
                children[kind] = child
            result.order_updates.append(child.snapshot())
        tp, sl = children.get(PARTIAL_TAKE_PROFIT), children.get(PARTIAL_STOP_LOSS)
        if tp is not None and sl is not None and tp.order_id in self.pending and sl.order_id in self.pending:
            self._twins[tp.order_id], self._twins[sl.order_id] = sl.order_id, tp.order_id

    def _fire(self, order: Order, result: EngineResult) -> None:
        """Trigger ``order``: ``Triggered``, then placed as its Market/Limit order (same ids)."""
        engine = self.engine
        spec = engine.instruments[order.symbol]
        book = engine.books[order.symbol]
        ts = engine.clock()
        twin_id = self._twins.get(order.order_id)
        self._remove(order)
        order.order_status = TRIGGERED
        order.updated_time = ts
        result.order_updates.append(order.snapshot())
        if twin_id is not None and twin_id in self.pending:
            self.deactivate(self.pending[twin_id], _OCO_CANCEL[order.stop_order_type], result)
        account = engine.accounts.get(order.owner)
        if order.stop_order_type in _FULL_KINDS and account is not None:
            pos = account.positions.get(order.symbol)
            if pos is not None:
                if order.stop_order_type == TAKE_PROFIT:
                    pos.take_profit = None
                else:
                    pos.stop_loss = None
        market = order.order_type == "Market"
        if order.stop_order_type in _FULL_KINDS:
            reducible = account.reducible_qty(order.symbol, order.side) if account is not None else ZERO
            cap = spec.max_mkt_order_qty if market else spec.max_order_qty
            lots = spec.qty_to_lots(min(reducible, cap))
        else:
            lots = spec.qty_to_lots(order.qty)
        if order.reduce_only:
            if order.close_on_trigger:
                self._make_room(spec, order, lots, result, ts)
            lots = min(lots, engine._reduce_only_room(spec, order.owner, order.side))
            if lots <= 0:
                self._end(order, CANCELLED, EC_NO_IMMEDIATE_QTY_TO_FILL, CANCEL_BY_REDUCE_ONLY, result, ts)
                return
        reference = engine.reference_price(order.symbol)
        if market:
            best = book.best_ask() if order.side == BUY else book.best_bid()
            limit, protection = market_protection(spec, order.side, best, reference)
            order.price = protection
            cost_price = reference if reference is not None else protection
        else:
            limit = spec.price_to_ticks(order.price)
            cost_price = order.price
        order.qty = order.leaves_qty = spec.lots_to_qty(lots)
        try:
            if not market:
                check_price_band(spec, order.side, order.price, reference)
            if account is not None and not order.reduce_only and cost_price:
                account.check_order_margin(replace(order, price=cost_price))
        except ExchangeError:
            # Bybit does not document what a fired conditional order that cannot be placed shows; the
            # paper exchange rejects it (docs/exchange_protocol.md §10 item 14).
            self._end(order, REJECTED, EC_OTHERS, CANCEL_UNKNOWN, result, ts)
            return
        order.order_status = NEW
        self.watch_attached(order)  # its own takeProfit/stopLoss apply to its fills
        subject = result.order
        engine._execute(spec, book, order, lots, limit, result, ts)
        result.order = subject

    def _end(
        self, order: Order, status: str, reason: str, cancel_type: str, result: EngineResult, ts: int
    ) -> None:
        self.engine._finish(order, status, reason, cancel_type, ts)
        self.engine._retire(order)
        result.order_updates.append(order.snapshot())

    def _make_room(self, spec: Instrument, order: Order, lots: int, result: EngineResult, ts: int) -> None:
        """Close-on-trigger: cut other resting reduce-only orders of this side (newest first) so that
        ``lots`` fit within the position."""
        engine = self.engine
        book = engine.books[order.symbol]
        room = engine._reduce_only_room(spec, order.owner, order.side)
        if room >= lots:
            return
        account = engine.accounts.get(order.owner)
        assert account is not None
        resting = [
            o
            for o in account.open_orders.values()
            if o.symbol == order.symbol and o.side == order.side and o.reduce_only
        ]
        entries = sorted(
            (e for o in resting if (e := book.get(o.order_id)) is not None), key=lambda e: -e.priority
        )
        need = lots - room
        for entry in entries:
            if need <= 0:
                break
            cut = min(need, entry.leaves)
            engine._cut(spec, book, engine._open[entry.order_id], entry, cut, result, ts)
            need -= cut
