"""Conditional orders, trading-stop and attached TP/SL in the matching engine (exchange_sim/conditional.py).

Prices are moved by printing trades: a liquidity owner rests 0.001 at the price and a taker lifts exactly
that, so the last price is the printed price. Deep liquidity far from the path fills the protection
orders when they fire.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_sim.accounts import AccountRegistry
from exchange_sim.errors import ExchangeError, RetCode
from exchange_sim.events import (
    CANCEL_BY_OCO_TP_BY_SL,
    CANCEL_BY_REDUCE_ONLY,
    CANCEL_BY_TPSL_CLEAR,
    CANCEL_BY_USER,
    CANCELLED,
    DEACTIVATED,
    FALL,
    FILLED,
    NEW,
    PARTIAL_STOP_LOSS,
    PARTIAL_TAKE_PROFIT,
    REJECTED,
    RISE,
    STOP_LOSS,
    STOP_ORDER,
    TAKE_PROFIT,
    TRIGGERED,
    UNTRIGGERED,
    Order,
)
from exchange_sim.instruments import DEFAULT_INSTRUMENTS
from exchange_sim.matching import EngineResult, MatchingEngine, OrderRequest
from exchange_sim.tpsl import TpslSpec, TradingStopRequest

T0 = 1_767_225_600_000
SYM = "BTCUSDT"


def make_engine(balance: str = "100000") -> MatchingEngine:
    registry = AccountRegistry(DEFAULT_INSTRUMENTS, lambda: T0)
    registry.open("alice", D(balance))
    return MatchingEngine(registry)


def limit(side: str, qty: str, price: str, tif: str = "GTC", **kw: object) -> OrderRequest:
    return OrderRequest(SYM, side, "Limit", D(qty), D(price), time_in_force=tif, **kw)  # type: ignore[arg-type]


def market(side: str, qty: str, **kw: object) -> OrderRequest:
    return OrderRequest(SYM, side, "Market", D(qty), **kw)  # type: ignore[arg-type]


def stop(side: str, qty: str, trigger: str, direction: int, **kw: object) -> OrderRequest:
    return OrderRequest(
        SYM,
        side,
        "Market",
        D(qty),
        trigger_price=D(trigger),
        trigger_direction=direction,
        **kw,  # type: ignore[arg-type]
    )


def deep(engine: MatchingEngine, bid: str = "62900.00", ask: str = "65100.00") -> None:
    """Deep liquidity outside the price path, inside the market protection of orders that fire."""
    engine.submit("deep", limit("Buy", "50", bid))
    engine.submit("deep", limit("Sell", "50", ask))


def print_trade(engine: MatchingEngine, price: str) -> EngineResult:
    """One public trade of 0.001 at exactly ``price`` (between the deep bid and ask)."""
    engine.submit("lp", limit("Sell", "0.001", price))
    return engine.submit("taker", limit("Buy", "0.001", price, "IOC"))


def go_long(engine: MatchingEngine, qty: str = "0.010", at: str = "64000.00") -> None:
    engine.submit("lp", limit("Sell", qty, at))
    engine.submit("alice", market("Buy", qty))
    assert engine.accounts.get("alice").position(SYM).qty == D(qty)  # type: ignore[union-attr]


def set_stop(engine: MatchingEngine, **kw: object) -> EngineResult:
    tp = kw.pop("tp", None)
    sl = kw.pop("sl", None)
    mode = kw.pop("mode", None)
    spec = TpslSpec(
        take_profit=D(str(tp)) if tp is not None else None,
        stop_loss=D(str(sl)) if sl is not None else None,
        tpsl_mode=mode,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return engine.conditional.trading_stop("alice", TradingStopRequest(SYM, spec))


def partial(engine: MatchingEngine, tp: str | None, sl: str | None, size: str) -> EngineResult:
    spec = TpslSpec(take_profit=D(tp) if tp else None, stop_loss=D(sl) if sl else None, tpsl_mode="Partial")
    return engine.conditional.trading_stop(
        "alice",
        TradingStopRequest(SYM, spec, tp_size=D(size) if tp else None, sl_size=D(size) if sl else None),
    )


def position(engine: MatchingEngine) -> D:
    return engine.accounts.get("alice").position(SYM).qty  # type: ignore[union-attr]


def updates(result: EngineResult, order_id: str) -> list[Order]:
    return [o for o in result.order_updates if o.order_id == order_id]


def rejected(call: object, *args: object, **kw: object) -> ExchangeError:
    with pytest.raises(ExchangeError) as info:
        call(*args, **kw)  # type: ignore[operator]
    return info.value


@pytest.fixture
def engine() -> MatchingEngine:
    e = make_engine()
    deep(e)
    print_trade(e, "64000.00")
    return e


# -- conditional orders ------------------------------------------------------------------------------


def test_stop_order_waits_untriggered_then_fires_once(engine: MatchingEngine) -> None:
    placed = engine.submit("alice", stop("Sell", "0.010", "63950.00", FALL, order_link_id="stop-1"))
    order = placed.order
    assert order is not None and order.order_status == UNTRIGGERED
    assert (order.stop_order_type, order.create_type, order.trigger_by) == (
        STOP_ORDER,
        "CreateByStopOrder",
        "LastPrice",
    )
    assert engine.get_order("alice", order_link_id="stop-1") == order
    assert engine.open_orders("alice") == []  # not in the book, no margin held
    assert updates(print_trade(engine, "63960.00"), order.order_id) == []
    crossed = print_trade(engine, "63950.00")
    mine = updates(crossed, order.order_id)
    assert [o.order_status for o in mine] == [TRIGGERED, FILLED]
    assert mine[-1].order_link_id == "stop-1" and mine[-1].qty == D("0.010")
    fills = [e for e in crossed.executions if e.owner == "alice"]
    assert fills and all(
        e.stop_order_type == STOP_ORDER and e.create_type == "CreateByStopOrder" for e in fills
    )
    assert position(engine) == D("-0.010")
    for price in ("63900.00", "63950.00", "63800.00"):
        assert updates(print_trade(engine, price), order.order_id) == []
    assert engine.conditional.pending == {}


def test_conditional_create_is_checked_against_the_price(engine: MatchingEngine) -> None:
    error = rejected(engine.submit, "alice", stop("Sell", "0.010", "64100.00", FALL))
    assert error.ret_code == RetCode.EXPECT_FALLING
    assert "expect Falling, but trigger_price[64100.00] >= current[64000.00]??LastPrice" in error.ret_msg
    error = rejected(engine.submit, "alice", stop("Buy", "0.010", "63000.00", RISE))
    assert error.ret_code == RetCode.EXPECT_RISING
    error = rejected(engine.submit, "alice", stop("Buy", "0.010", "65000.00", 0))
    assert error.ret_code == RetCode.PARAMS_ERROR and "triggerDirection" in error.ret_msg
    error = rejected(engine.submit, "alice", stop("Buy", "0.010", "65000.05", RISE))
    assert "triggerPrice" in error.ret_msg and "tickSize" in error.ret_msg
    for i in range(10):
        engine.submit("alice", stop("Buy", "0.010", f"{65000 + i}.00", RISE))
    error = rejected(engine.submit, "alice", stop("Buy", "0.010", "65020.00", RISE))
    assert error.ret_code == RetCode.TOO_MANY_STOP_ORDERS


def test_mark_price_trigger_fires_on_poll(engine: MatchingEngine) -> None:
    order = engine.submit("alice", stop("Buy", "0.010", "64500.00", RISE, trigger_by="MarkPrice")).order
    assert order is not None
    engine.set_mark_price(SYM, D("64400"))
    assert engine.poll_triggers().order_updates == []
    engine.set_mark_price(SYM, D("64500"))
    fired = engine.poll_triggers()
    assert [o.order_status for o in updates(fired, order.order_id)] == [TRIGGERED, FILLED]
    assert position(engine) == D("0.010")


def test_cancel_and_amend_untriggered(engine: MatchingEngine) -> None:
    order = engine.submit("alice", stop("Buy", "0.010", "64500.00", RISE, order_link_id="s2")).order
    assert order is not None
    amended = engine.amend("alice", SYM, order_link_id="s2", trigger_price=D("64600.00"), qty=D("0.020"))
    assert amended.order is not None and amended.order.trigger_price == D("64600.00")
    assert amended.order.qty == D("0.020") and amended.order.order_status == UNTRIGGERED
    error = rejected(engine.amend, "alice", SYM, order_link_id="s2", trigger_price=D("63000.00"))
    assert error.ret_code == RetCode.EXPECT_RISING
    cancelled = engine.cancel("alice", SYM, order_link_id="s2")
    assert cancelled.order is not None
    assert (cancelled.order.order_status, cancelled.order.cancel_type) == (DEACTIVATED, CANCEL_BY_USER)
    assert rejected(engine.cancel, "alice", SYM, order_link_id="s2").ret_code == RetCode.ORDER_NOT_EXISTS


def test_fired_order_that_cannot_be_afforded_is_rejected() -> None:
    engine = make_engine(balance="100")
    deep(engine)
    print_trade(engine, "64000.00")
    order = engine.submit("alice", stop("Buy", "0.100", "64100.00", RISE)).order  # no margin held yet
    assert order is not None
    mine = updates(print_trade(engine, "64100.00"), order.order_id)
    assert [o.order_status for o in mine] == [TRIGGERED, REJECTED]
    assert position(engine) == 0


def test_reduce_only_stop_without_position_is_cancelled_when_it_fires(engine: MatchingEngine) -> None:
    order = engine.submit("alice", stop("Sell", "0.010", "63900.00", FALL, reduce_only=True)).order
    assert order is not None and order.order_status == UNTRIGGERED  # accepted without a position
    final = updates(print_trade(engine, "63900.00"), order.order_id)[-1]
    assert (final.order_status, final.cancel_type) == (CANCELLED, CANCEL_BY_REDUCE_ONLY)
    assert position(engine) == 0


# -- trading-stop -------------------------------------------------------------------------------------


def test_full_stop_loss_triggers_exactly_once_and_closes(engine: MatchingEngine) -> None:
    go_long(engine)
    result = set_stop(engine, sl="63900.00")
    (sl,) = result.order_updates
    assert (sl.stop_order_type, sl.qty, sl.side, sl.trigger_direction) == (STOP_LOSS, 0, "Sell", FALL)
    assert sl.reduce_only and sl.close_on_trigger and sl.create_type == "CreateByStopLoss"
    pos = engine.accounts.get("alice").position(SYM)  # type: ignore[union-attr]
    assert pos.stop_loss == D("63900.00") and pos.take_profit is None
    assert updates(print_trade(engine, "63901.00"), sl.order_id) == []
    fired = print_trade(engine, "63899.00")
    assert [o.order_status for o in updates(fired, sl.order_id)] == [TRIGGERED, FILLED]
    assert position(engine) == 0 and pos.stop_loss is None
    assert updates(print_trade(engine, "63000.00"), sl.order_id) == []


def test_take_profit_fires_and_the_stop_loss_goes_with_the_position(engine: MatchingEngine) -> None:
    go_long(engine)
    tp, sl = set_stop(engine, tp="64100.00", sl="63900.00").order_updates
    fired = print_trade(engine, "64100.00")
    assert [o.order_status for o in updates(fired, tp.order_id)] == [TRIGGERED, FILLED]
    (gone,) = updates(fired, sl.order_id)
    assert (gone.order_status, gone.cancel_type) == (DEACTIVATED, CANCEL_BY_TPSL_CLEAR)
    assert position(engine) == 0 and engine.conditional.pending == {}


def test_closing_the_position_removes_its_tpsl(engine: MatchingEngine) -> None:
    go_long(engine)
    tp, sl = set_stop(engine, tp="64100.00", sl="63900.00").order_updates
    closed = engine.submit("alice", market("Sell", "0.010", reduce_only=True))
    assert {o.order_id: o.cancel_type for o in closed.order_updates if o.order_status == DEACTIVATED} == {
        tp.order_id: CANCEL_BY_TPSL_CLEAR,
        sl.order_id: CANCEL_BY_TPSL_CLEAR,
    }
    pos = engine.accounts.get("alice").position(SYM)  # type: ignore[union-attr]
    assert pos.take_profit is None and pos.stop_loss is None


def test_trading_stop_replaces_removes_and_refuses(engine: MatchingEngine) -> None:
    error = rejected(set_stop, engine, sl="63900.00")
    assert (error.ret_code, error.ret_msg) == (RetCode.PARAMS_ERROR, "can not set tp/sl/ts for zero position")
    go_long(engine)
    (tp,) = set_stop(engine, tp="64100.00").order_updates
    (moved,) = set_stop(engine, tp="64200.00", tp_trigger_by="MarkPrice").order_updates
    assert (
        moved.order_id == tp.order_id
        and moved.trigger_price == D("64200.00")
        and moved.trigger_by == "MarkPrice"
    )
    assert (
        rejected(set_stop, engine, tp="64200.00", tp_trigger_by="MarkPrice").ret_code == RetCode.NOT_MODIFIED
    )
    assert rejected(set_stop, engine).ret_code == RetCode.NOT_MODIFIED
    error = rejected(set_stop, engine, sl="64100.00")
    assert (
        error.ret_msg
        == "StopLoss:64100.00 set for Buy position should lower than base_price:64000.00??LastPrice"
    )
    error = rejected(set_stop, engine, tp="63000.00")
    assert "should higher than base_price" in error.ret_msg
    assert "Partial" in rejected(set_stop, engine, tp="64300.00", tp_order_type="Limit").ret_msg
    (removed,) = set_stop(engine, tp="0").order_updates
    assert (removed.order_status, removed.cancel_type) == (DEACTIVATED, CANCEL_BY_USER)
    assert engine.accounts.get("alice").position(SYM).take_profit is None  # type: ignore[union-attr]


def test_partial_pair_cancels_its_twin(engine: MatchingEngine) -> None:
    go_long(engine, "0.020")
    tp, sl = partial(engine, "64100.00", "63900.00", "0.010").order_updates
    assert (tp.stop_order_type, sl.stop_order_type) == (PARTIAL_TAKE_PROFIT, PARTIAL_STOP_LOSS)
    assert tp.qty == sl.qty == D("0.010")
    fired = print_trade(engine, "63900.00")
    assert [o.order_status for o in updates(fired, sl.order_id)] == [TRIGGERED, FILLED]
    (twin,) = updates(fired, tp.order_id)
    assert (twin.order_status, twin.cancel_type) == (DEACTIVATED, CANCEL_BY_OCO_TP_BY_SL)
    assert position(engine) == D("0.010")


def test_partial_limits(engine: MatchingEngine) -> None:
    go_long(engine, "0.010")
    assert rejected(partial, engine, "64100.00", None, "0.020").ret_code == RetCode.TPSL_SIZE_TOO_LARGE
    spec = TpslSpec(take_profit=D("64100.00"), stop_loss=D("63900.00"), tpsl_mode="Partial")
    unequal = TradingStopRequest(SYM, spec, tp_size=D("0.005"), sl_size=D("0.004"))
    assert "must be equal" in rejected(engine.conditional.trading_stop, "alice", unequal).ret_msg
    for _ in range(10):
        partial(engine, "64100.00", "63900.00", "0.001")
    assert rejected(partial, engine, "64100.00", None, "0.001").ret_code == RetCode.TOO_MANY_PARTIAL_TPSL


def test_close_on_trigger_makes_room_by_cutting_reduce_only_orders(engine: MatchingEngine) -> None:
    go_long(engine, "0.020")
    resting = engine.submit("alice", limit("Sell", "0.020", "65000.00", reduce_only=True)).order
    assert resting is not None and resting.order_status == NEW
    (sl,) = set_stop(engine, sl="63900.00").order_updates
    fired = print_trade(engine, "63900.00")
    cut = updates(fired, resting.order_id)[-1]
    assert (cut.order_status, cut.cancel_type) == (CANCELLED, CANCEL_BY_REDUCE_ONLY)
    assert updates(fired, sl.order_id)[-1].order_status == FILLED
    assert position(engine) == 0


def test_cancel_all_filters(engine: MatchingEngine) -> None:
    go_long(engine)
    set_stop(engine, tp="64100.00", sl="63900.00")
    engine.submit("alice", stop("Buy", "0.010", "64500.00", RISE))
    engine.submit("alice", limit("Buy", "0.010", "63000.00"))
    kept = engine.cancel_all("alice", SYM, order_filter="Order")
    assert [o.order_type for o in kept.order_updates] == ["Limit"]
    assert len(engine.conditional.pending) == 3
    stops = engine.cancel_all("alice", SYM, order_filter="StopOrder", stop_order_type="Stop")
    assert [o.stop_order_type for o in stops.order_updates] == [STOP_ORDER]
    everything = engine.cancel_all("alice", SYM)
    assert {o.stop_order_type for o in everything.order_updates} == {TAKE_PROFIT, STOP_LOSS}
    assert engine.accounts.get("alice").position(SYM).stop_loss is None  # type: ignore[union-attr]


# -- TP/SL attached to orders ------------------------------------------------------------------------


def test_attached_full_tpsl_becomes_the_positions(engine: MatchingEngine) -> None:
    engine.submit("lp", limit("Sell", "0.010", "64000.00"))
    spec = TpslSpec(take_profit=D("64500.00"), stop_loss=D("63500.00"))
    placed = engine.submit("alice", limit("Buy", "0.010", "64000.00", tpsl=spec))
    assert placed.order is not None and placed.order.take_profit == D("64500.00")
    assert placed.order.tpsl_mode == "Full"
    kinds = {o.stop_order_type: o for o in placed.order_updates if o.order_status == UNTRIGGERED}
    assert set(kinds) == {TAKE_PROFIT, STOP_LOSS}
    pos = engine.accounts.get("alice").position(SYM)  # type: ignore[union-attr]
    assert (pos.take_profit, pos.stop_loss) == (D("64500.00"), D("63500.00"))
    error = rejected(
        engine.submit, "alice", limit("Buy", "0.010", "64000.00", tpsl=TpslSpec(stop_loss=D("64100.00")))
    )
    assert "StopLoss:64100.00 set for Buy position should lower than base_price:64000.00" in error.ret_msg
    error = rejected(engine.submit, "alice", market("Sell", "0.010", reduce_only=True, tpsl=spec))
    assert "reduceOnly" in error.ret_msg


def test_attached_partial_tpsl_grows_with_fills(engine: MatchingEngine) -> None:
    spec = TpslSpec(take_profit=D("64500.00"), stop_loss=D("63500.00"), tpsl_mode="Partial")
    parent = engine.submit("alice", limit("Buy", "0.020", "63990.00", order_link_id="p1", tpsl=spec)).order
    assert parent is not None and parent.order_status == NEW
    engine.submit("taker2", limit("Sell", "0.005", "63990.00", "IOC"))
    engine.submit("taker2", limit("Sell", "0.005", "63990.00", "IOC"))
    children = sorted(engine.conditional.pending.values(), key=lambda o: o.stop_order_type)
    assert [(o.stop_order_type, o.qty, o.parent_order_link_id) for o in children] == [
        (PARTIAL_STOP_LOSS, D("0.010"), "p1"),
        (PARTIAL_TAKE_PROFIT, D("0.010"), "p1"),
    ]


def test_amend_attached_tpsl_before_any_fill(engine: MatchingEngine) -> None:
    spec = TpslSpec(stop_loss=D("63000.00"))
    order = engine.submit("alice", limit("Buy", "0.020", "63990.00", tpsl=spec)).order
    assert order is not None
    amended = engine.amend("alice", SYM, order_id=order.order_id, tpsl=TpslSpec(stop_loss=D("63100.00")))
    assert amended.order is not None and amended.order.stop_loss == D("63100.00")
    engine.submit("taker2", limit("Sell", "0.005", "63990.00", "IOC"))
    error = rejected(
        engine.amend, "alice", SYM, order_id=order.order_id, tpsl=TpslSpec(stop_loss=D("63200.00"))
    )
    assert error.ret_code == RetCode.TPSL_OF_PARTIALLY_FILLED


# -- properties ---------------------------------------------------------------------------------------

# Prices stay within 1% of each other (inside the 2% price band), the deep liquidity within 2% of them.
LOW, HIGH = 63700, 64300
_path = st.lists(st.integers(min_value=LOW, max_value=HIGH), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(path=_path, trigger=st.integers(min_value=LOW + 1, max_value=HIGH - 1), rise=st.booleans())
def test_a_trigger_fires_exactly_once_at_the_first_crossing(
    path: list[int], trigger: int, rise: bool
) -> None:
    engine = make_engine()
    deep(engine, "63400.00", "64600.00")
    start = LOW if rise else HIGH  # the trigger is not yet crossed at creation
    print_trade(engine, f"{start}.00")
    direction = RISE if rise else FALL
    order = engine.submit("alice", stop("Buy" if rise else "Sell", "0.001", f"{trigger}.00", direction)).order
    assert order is not None
    crossed = [i for i, p in enumerate(path) if (p >= trigger if rise else p <= trigger)]
    fired_at = [
        i
        for i, p in enumerate(path)
        if any(o.order_status == TRIGGERED for o in updates(print_trade(engine, f"{p}.00"), order.order_id))
    ]
    assert fired_at == crossed[:1]


_actions = st.lists(
    st.one_of(
        st.tuples(st.just("trade"), st.integers(min_value=LOW, max_value=HIGH)),
        st.tuples(st.just("open"), st.sampled_from(["Buy", "Sell"]), st.integers(min_value=1, max_value=5)),
        st.tuples(
            st.just("stop"), st.sampled_from(["Buy", "Sell"]), st.integers(min_value=LOW, max_value=HIGH)
        ),
        st.tuples(st.just("tpsl"), st.integers(min_value=LOW, max_value=HIGH)),
        st.tuples(st.just("partial"), st.integers(min_value=LOW, max_value=HIGH)),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(actions=_actions)
def test_reduce_only_protection_never_increases_a_position(actions: list[tuple]) -> None:  # type: ignore[type-arg]
    engine = make_engine()
    deep(engine, "63400.00", "64600.00")
    print_trade(engine, "64000.00")
    results: list[EngineResult] = []
    for action in actions:
        try:
            if action[0] == "trade":
                results.append(print_trade(engine, f"{action[1]}.00"))
            elif action[0] == "open":
                results.append(engine.submit("alice", market(action[1], f"0.00{action[2]}")))
            elif action[0] == "stop":
                last = engine.conditional.price(SYM, "LastPrice")
                direction = RISE if D(action[2]) > last else FALL  # type: ignore[operator]
                req = stop(action[1], "0.003", f"{action[2]}.00", direction, reduce_only=True)
                results.append(engine.submit("alice", req))
            elif action[0] == "tpsl":
                results.append(set_stop(engine, sl=f"{action[1]}.00"))
            else:
                results.append(partial(engine, None, f"{action[1]}.00", "0.001"))
        except ExchangeError:
            continue  # refused requests (wrong side of the price, no position, ...) change nothing
    reduce_only = {
        o.order_id for r in results for o in r.order_updates if o.owner == "alice" and o.reduce_only
    }
    for result in results:
        for ex in result.executions:
            if ex.owner == "alice" and ex.order_id in reduce_only:
                assert ex.closed_size == ex.exec_qty, ex  # it only closed: never opened or flipped
    account = engine.accounts.get("alice")
    assert account is not None
    assert account.wallet_balance == account.deposited + sum(
        p.cum_realised_pnl for p in account.positions.values()
    )
    for result in results:
        for o in result.order_updates:
            assert o.qty == o.cum_exec_qty + o.leaves_qty + o.cancelled_qty, o
    pos = account.position(SYM)
    for order in engine.conditional.pending.values():
        if order.stop_order_type in (TAKE_PROFIT, STOP_LOSS, PARTIAL_STOP_LOSS, PARTIAL_TAKE_PROFIT):
            assert pos.qty and order.side != pos.side  # TP/SL only ever protect an open position


def test_amending_a_tpsl_order_moves_the_positions_tpsl(engine: MatchingEngine) -> None:
    go_long(engine)
    (tp,) = set_stop(engine, tp="64100.00", tp_trigger_by="MarkPrice").order_updates
    amended = engine.amend("alice", SYM, order_id=tp.order_id, trigger_price=D("64200.00"))
    assert amended.order is not None and amended.order.trigger_price == D("64200.00")
    pos = engine.accounts.get("alice").position(SYM)  # type: ignore[union-attr]
    assert pos.take_profit == D("64200.00") and pos.tp_trigger_by == "MarkPrice"
    engine.set_mark_price(SYM, D("64000"))
    error = rejected(engine.amend, "alice", SYM, order_id=tp.order_id, trigger_price=D("63900.00"))
    assert "should higher than base_price:64000??MarkPrice" in error.ret_msg
    assert (
        "whole position" in rejected(engine.amend, "alice", SYM, order_id=tp.order_id, qty=D("0.001")).ret_msg
    )


def test_attached_tpsl_of_a_reducing_fill_is_not_applied(engine: MatchingEngine) -> None:
    go_long(engine, "0.020")
    engine.submit("lp2", limit("Buy", "0.010", "63999.00"))
    spec = TpslSpec(take_profit=D("63000.00"), stop_loss=D("65000.00"))  # a short's TP/SL
    engine.submit("alice", limit("Sell", "0.010", "63999.00", tpsl=spec))
    assert position(engine) == D("0.010") and engine.conditional.pending == {}
