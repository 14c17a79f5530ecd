"""Amend, cancel and cancel-all: the matching engine's changes to orders already open.

``/v5/order/amend``, ``/v5/order/cancel`` and ``/v5/order/cancel-all`` (docs/exchange_protocol.md §4):
an amend's price change or quantity increase loses queue priority, a decrease keeps it
(docs/exchange_sim_market.md §11); a re-priced order that now crosses trades at once; Untriggered
conditional and TP/SL orders are handed to :class:`~exchange_sim.conditional.ConditionalOrders`.

Functions taking the engine, which keeps its public ``amend``/``cancel``/``cancel_all`` and calls
these: like ``conditional.py``, this is the engine's own code working on its internals (books, open
orders, ``_execute``, ``_retire``), split off for size, not a separate layer.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

from exchange_sim.errors import ExchangeError, RetCode
from exchange_sim.events import CANCEL_BY_USER, CANCELLED, UNTRIGGERED, Order
from exchange_sim.instruments import get_instrument
from exchange_sim.pricing import check_price_band
from exchange_sim.tpsl import TpslSpec, attach, check_attached, matches_filter, params_error

if TYPE_CHECKING:
    from exchange_sim.matching import EngineResult, MatchingEngine


def amend(
    engine: MatchingEngine,
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
    """``/v5/order/amend`` of ``engine``'s open order (see :meth:`MatchingEngine.amend`)."""
    from exchange_sim.matching import EngineResult  # the engine module imports this one

    spec = get_instrument(symbol, engine.instruments)
    book = engine.books[symbol]
    tpsl = tpsl if tpsl is not None else TpslSpec()
    order = _require_open(engine, owner, symbol, order_id, order_link_id, "replace")
    changes_tpsl = tpsl.given or tpsl.tp_limit_price is not None or tpsl.sl_limit_price is not None
    if qty is None and price is None and trigger_price is None and trigger_by is None and not changes_tpsl:
        raise params_error("amend needs qty, price, triggerPrice, triggerBy, takeProfit or stopLoss")
    if order.order_status == UNTRIGGERED:
        result = EngineResult()
        engine.conditional.amend(
            order, qty=qty, price=price, trigger_price=trigger_price, trigger_by=trigger_by, tpsl=tpsl,
            result=result,
        )  # fmt: skip
        return result
    if trigger_price is not None or trigger_by is not None:
        raise params_error("triggerPrice/triggerBy can only be amended before the order has triggered")
    entry = book.get(order.order_id)
    assert entry is not None
    if changes_tpsl:
        if order.cum_exec_qty:
            raise ExchangeError(
                RetCode.TPSL_OF_PARTIALLY_FILLED,
                "Not allowed to modify the TP/SL of a partially filled open order",
            )
        base = spec.ticks_to_price(spec.validate_price(price)) if price is not None else order.price
        mode = tpsl.tpsl_mode or order.tpsl_mode or None
        check_attached(spec, order.side, replace(tpsl, tpsl_mode=mode), base)
        if qty is None and price is None:
            attach(order, tpsl, amend=True)
            order.updated_time = engine.clock()
            engine.conditional.watch_attached(order)
            snapshot = order.snapshot()
            result = EngineResult(order=snapshot, order_updates=[snapshot])
            return result
    cum_lots = spec.qty_to_lots(order.cum_exec_qty)
    new_total = spec.validate_qty(qty, "Limit") if qty is not None else spec.qty_to_lots(order.qty)
    new_ticks = spec.validate_price(price) if price is not None else entry.price
    if new_total == spec.qty_to_lots(order.qty) and new_ticks == entry.price and not changes_tpsl:
        raise params_error("amend changes nothing: qty and price equal the order's")
    if new_total <= cum_lots:
        raise ExchangeError(
            RetCode.AMEND_QTY_NOT_ABOVE_FILLED,
            f"amended qty {qty} must exceed the filled qty {order.cum_exec_qty}",
        )
    new_price = spec.ticks_to_price(new_ticks)
    if new_ticks != entry.price:
        check_price_band(spec, order.side, new_price, engine.reference_price(symbol))
    if not order.reduce_only:
        spec.validate_notional(spec.lots_to_qty(new_total), new_price)
    new_leaves = new_total - cum_lots
    account = engine.accounts.get(owner)
    if order.reduce_only:
        new_leaves = min(new_leaves, engine._reduce_only_room(spec, owner, order.side, order.order_id))
        if new_leaves <= 0:
            raise ExchangeError(RetCode.REDUCE_ONLY_NOT_SATISFIED, "Reduce-only rule not satisfied")
    if account is not None:
        probe = replace(order, price=new_price, leaves_qty=spec.lots_to_qty(new_leaves))
        account.check_order_margin(probe, replacing=order.order_id)
    ts = engine.clock()
    order.qty = spec.lots_to_qty(cum_lots + new_leaves)
    order.leaves_qty = spec.lots_to_qty(new_leaves)
    order.price = new_price
    order.updated_time = ts
    if changes_tpsl:
        attach(order, tpsl, amend=True)
        engine.conditional.watch_attached(order)
    result = EngineResult()
    if new_ticks == entry.price and new_leaves <= entry.leaves:
        book.reduce(order.order_id, new_leaves)
    elif not book.would_cross(order.side, new_ticks):
        book.requeue(order.order_id, new_ticks, new_leaves)
    else:
        book.remove(order.order_id)
        engine._unlist(order)
        engine._execute(spec, book, order, new_leaves, new_ticks, result, ts)
        engine.conditional.settle(result, (symbol,))
        return result
    result.order = order.snapshot()
    result.order_updates.append(result.order)
    return result


def cancel(
    engine: MatchingEngine,
    owner: str,
    symbol: str,
    *,
    order_id: str | None = None,
    order_link_id: str | None = None,
) -> EngineResult:
    """``/v5/order/cancel`` of ``engine``'s open order (see :meth:`MatchingEngine.cancel`)."""
    from exchange_sim.matching import EngineResult

    get_instrument(symbol, engine.instruments)
    order = _require_open(engine, owner, symbol, order_id, order_link_id, "cancel")
    result = EngineResult()
    if order.order_status == UNTRIGGERED:
        engine.conditional.deactivate(order, CANCEL_BY_USER, result)
    else:
        _cancel_one(engine, order, engine.clock(), result)
    result.order = result.order_updates[-1]
    return result


def cancel_all(
    engine: MatchingEngine,
    owner: str,
    symbol: str | None = None,
    order_filter: str | None = None,
    stop_order_type: str | None = None,
) -> EngineResult:
    """``/v5/order/cancel-all`` of ``engine``'s orders (see :meth:`MatchingEngine.cancel_all`)."""
    from exchange_sim.matching import MAX_ACTIVE_ORDERS, EngineResult

    if symbol is not None:
        get_instrument(symbol, engine.instruments)
    ts = engine.clock()
    result = EngineResult()
    active = [
        o
        for o in engine._open.values()
        if o.owner == owner
        and symbol in (None, o.symbol)
        and matches_filter(o, order_filter, stop_order_type)
    ]
    waiting = [
        o
        for o in engine.conditional.pending.values()
        if o.owner == owner
        and symbol in (None, o.symbol)
        and matches_filter(o, order_filter, stop_order_type)
    ]
    for order in (active + waiting)[:MAX_ACTIVE_ORDERS]:
        if order.order_status == UNTRIGGERED:
            engine.conditional.deactivate(order, CANCEL_BY_USER, result)
        else:
            _cancel_one(engine, order, ts, result)
    return result


def _cancel_one(engine: MatchingEngine, order: Order, ts: int, result: EngineResult) -> None:
    engine.books[order.symbol].remove(order.order_id)
    engine._finish(order, CANCELLED, order.reject_reason, CANCEL_BY_USER, ts)
    engine._retire(order)
    result.order_updates.append(order.snapshot())


def _require_open(
    engine: MatchingEngine,
    owner: str,
    symbol: str,
    order_id: str | None,
    order_link_id: str | None,
    verb: str,
) -> Order:
    """``owner``'s open or Untriggered order in ``symbol``; 10001 without an id, 110001 if there is none."""
    if not order_id and not order_link_id:
        raise params_error("OrderId or orderLinkId is required")
    order = engine._find(owner, order_id, order_link_id, include_closed=False)
    if order is None or order.symbol != symbol:
        raise ExchangeError(RetCode.ORDER_NOT_EXISTS, f"order not exists or too late to {verb}")
    return order
