"""The matching engine: Bybit v5 order semantics, events, and properties under random order flow."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_sim import matching
from exchange_sim.accounts import AccountRegistry
from exchange_sim.errors import ExchangeError, RetCode
from exchange_sim.events import (
    CANCEL_BY_REDUCE_ONLY,
    CANCEL_BY_USER,
    CANCELLED,
    EC_CANCEL_FOR_NO_FULL_FILL,
    EC_NO_IMMEDIATE_QTY_TO_FILL,
    EC_POST_ONLY_WILL_TAKE_LIQUIDITY,
    EC_REACH_MARKET_PRICE_LIMIT,
    FILLED,
    NEW,
    PARTIALLY_FILLED,
    Execution,
    Order,
)
from exchange_sim.instruments import DEFAULT_INSTRUMENTS
from exchange_sim.matching import EngineResult, MatchingEngine, OrderRequest

T0 = 1_767_225_600_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(clock: Clock) -> MatchingEngine:
    registry = AccountRegistry(DEFAULT_INSTRUMENTS, clock)
    registry.open("alice", D("100000"))
    registry.open("bob", D("100000"))
    return MatchingEngine(registry)


def limit(side: str, qty: str, price: str, tif: str = "GTC", **kw: object) -> OrderRequest:
    return OrderRequest("BTCUSDT", side, "Limit", D(qty), D(price), time_in_force=tif, **kw)  # type: ignore[arg-type]


def market(side: str, qty: str, **kw: object) -> OrderRequest:
    return OrderRequest("BTCUSDT", side, "Market", D(qty), **kw)  # type: ignore[arg-type]


def seed_book(engine: MatchingEngine) -> None:
    """Synthetic liquidity: asks 64000.10 (1), 64000.20 (2); bids 63999.90 (1), 63999.80 (2)."""
    engine.submit("mm", limit("Sell", "1", "64000.10"))
    engine.submit("mm", limit("Sell", "2", "64000.20"))
    engine.submit("mm", limit("Buy", "1", "63999.90"))
    engine.submit("mm", limit("Buy", "2", "63999.80"))


def rejected(engine: MatchingEngine, owner: str, req: OrderRequest) -> ExchangeError:
    with pytest.raises(ExchangeError) as info:
        engine.submit(owner, req)
    return info.value


# -- resting, crossing, events --------------------------------------------------------------------------


def test_limit_rests_as_new(engine: MatchingEngine) -> None:
    res = engine.submit("alice", limit("Buy", "0.010", "64000.00", order_link_id="demo-0001"))
    order = res.order
    assert order is not None
    assert (order.order_status, order.leaves_qty, order.cum_exec_qty) == (NEW, D("0.010"), 0)
    assert order.leaves_value == D("640") and order.avg_price is None
    assert res.executions == [] and [u.order_status for u in res.order_updates] == [NEW]
    assert engine.book("BTCUSDT").depth("Buy", 1) == [(640_000, 10)]
    assert engine.get_order("alice", order_link_id="demo-0001") == order
    assert engine.open_orders("alice") == [order]


def test_crossing_limit_fills_at_maker_prices_then_rests(engine: MatchingEngine) -> None:
    seed_book(engine)
    res = engine.submit("alice", limit("Buy", "1.500", "64000.10"))
    order = res.order
    assert order is not None
    assert order.order_status == PARTIALLY_FILLED
    assert (order.cum_exec_qty, order.leaves_qty) == (D("1"), D("0.5"))
    taker = [e for e in res.executions if not e.is_maker]
    maker = [e for e in res.executions if e.is_maker]
    assert [(e.exec_price, e.exec_qty) for e in taker] == [(D("64000.10"), D("1.000"))]
    assert taker[0].exec_fee == D("64000.10") * D("0.00055") and taker[0].fee_rate == D("0.00055")
    assert maker[0].owner == "mm" and maker[0].fee_rate == D("0.0002")
    # One message per order state change: the maker's Filled, then the taker's PartiallyFilled.
    assert [(u.owner, u.order_status) for u in res.order_updates] == [
        ("mm", FILLED),
        ("alice", PARTIALLY_FILLED),
    ]
    assert [(t.price, t.qty, t.taker_side) for t in res.trades] == [(D("64000.10"), D("1.000"), "Buy")]
    book = engine.book("BTCUSDT")
    assert (book.best_bid(), book.best_ask()) == (640_001, 640_002)
    book.check_invariants()


def test_sweep_walks_levels_best_first(engine: MatchingEngine) -> None:
    seed_book(engine)
    res = engine.submit("alice", limit("Buy", "2.5", "64000.20"))
    assert res.order is not None and res.order.order_status == FILLED
    assert [t.price for t in res.trades] == [D("64000.10"), D("64000.20")]
    assert res.order.avg_price == (D("64000.10") + D("64000.20") * D("1.5")) / D("2.5")
    assert res.trades[1].tick_direction == "PlusTick"
    # One message per order: the makers (Filled, PartiallyFilled), then the taker's Filled only.
    assert [u.order_status for u in res.order_updates] == [FILLED, PARTIALLY_FILLED, FILLED]
    assert len({u.order_id for u in res.order_updates}) == 3


def test_time_priority_within_a_level(engine: MatchingEngine, clock: Clock) -> None:
    first = engine.submit("mm", limit("Sell", "0.5", "64000.10")).order
    clock.now += 1
    second = engine.submit("bob", limit("Sell", "0.5", "64000.10")).order
    assert first is not None and second is not None
    res = engine.submit("alice", limit("Buy", "0.7", "64000.10"))
    fills = [(e.order_id, e.exec_qty) for e in res.executions if e.is_maker]
    assert fills == [(first.order_id, D("0.500")), (second.order_id, D("0.200"))]


def test_fee_examples_from_the_docs(engine: MatchingEngine) -> None:
    engine.submit("alice", limit("Buy", "0.010", "64000.00"))
    res = engine.submit("mm", limit("Sell", "0.004", "64000.00", "IOC"))
    maker = next(e for e in res.executions if e.is_maker)
    assert (maker.exec_value, maker.exec_fee) == (D("256"), D("0.0512"))
    assert maker.leaves_qty == D("0.006") and maker.seq > 0


# -- time in force ------------------------------------------------------------------------------------


def test_ioc_remainder_cancelled(engine: MatchingEngine) -> None:
    seed_book(engine)
    res = engine.submit("alice", limit("Buy", "1.5", "64000.10", "IOC"))
    order = res.order
    assert order is not None
    assert (order.order_status, order.cum_exec_qty, order.leaves_qty) == (CANCELLED, D("1"), 0)
    assert order.cancelled_qty == D("0.5") and order.reject_reason == EC_NO_IMMEDIATE_QTY_TO_FILL
    assert engine.book("BTCUSDT").best_bid() == 639_999


def test_ioc_without_liquidity(engine: MatchingEngine) -> None:
    res = engine.submit("alice", limit("Buy", "0.1", "64000", "IOC"))
    assert res.order is not None and res.order.order_status == CANCELLED and res.order.cum_exec_qty == 0
    assert res.order.reject_reason == EC_NO_IMMEDIATE_QTY_TO_FILL


def test_fok_all_or_nothing(engine: MatchingEngine) -> None:
    seed_book(engine)
    before = engine.book("BTCUSDT").export()
    res = engine.submit("alice", limit("Buy", "3.001", "64000.20", "FOK"))
    assert res.order is not None and res.order.order_status == CANCELLED
    assert res.order.reject_reason == EC_CANCEL_FOR_NO_FULL_FILL and res.executions == []
    assert engine.book("BTCUSDT").export() == before
    res = engine.submit("alice", limit("Buy", "3", "64000.20", "FOK"))
    assert res.order is not None and res.order.order_status == FILLED
    assert engine.book("BTCUSDT").best_ask() is None


def test_post_only_that_would_cross_is_cancelled(engine: MatchingEngine) -> None:
    seed_book(engine)
    res = engine.submit("alice", limit("Buy", "0.1", "64000.10", "PostOnly"))
    order = res.order
    assert order is not None
    assert (order.order_status, order.reject_reason, order.cum_exec_qty) == (
        CANCELLED,
        EC_POST_ONLY_WILL_TAKE_LIQUIDITY,
        0,
    )
    assert res.executions == [] and len(res.order_updates) == 1
    res = engine.submit("alice", limit("Buy", "0.1", "64000.00", "PostOnly"))
    assert res.order is not None and res.order.order_status == NEW


def test_market_order_is_bounded_by_protection_price(engine: MatchingEngine) -> None:
    engine.submit("mm", limit("Sell", "0.1", "64000.00"))
    engine.submit("mm", limit("Sell", "0.1", "70000.00"))
    engine.set_mark_price("BTCUSDT", D("64000"))
    res = engine.submit("alice", market("Buy", "0.2"))
    order = res.order
    assert order is not None
    assert order.price == D("65280.00") and order.time_in_force == "IOC"  # mark × 1.02
    assert (order.order_status, order.cum_exec_qty) == (CANCELLED, D("0.1"))
    assert order.reject_reason == EC_REACH_MARKET_PRICE_LIMIT


def test_market_order_with_tick_slippage(engine: MatchingEngine) -> None:
    seed_book(engine)
    res = engine.submit(
        "alice", market("Sell", "2.5", slippage_tolerance_type="TickSize", slippage_tolerance=D(1))
    )
    assert res.order is not None and res.order.price == D("63999.80")
    assert res.order.order_status == FILLED
    err = rejected(
        engine, "alice", market("Sell", "1", slippage_tolerance_type="Percent", slippage_tolerance=D(20))
    )
    assert err.ret_code == RetCode.PARAMS_ERROR and "slippageTolerance" in err.ret_msg


def test_market_order_on_empty_book(engine: MatchingEngine) -> None:
    res = engine.submit("alice", market("Buy", "0.1"))
    assert res.order is not None and res.order.order_status == CANCELLED
    assert res.order.reject_reason == EC_NO_IMMEDIATE_QTY_TO_FILL


# -- create-time validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("req", "text"),
    [
        (OrderRequest("BTCUSDT", "buy", "Limit", D("1"), D("64000")), "side invalid"),
        (OrderRequest("BTCUSDT", "Buy", "Stop", D("1"), D("64000")), "orderType"),
        (OrderRequest("BTCUSDT", "Buy", "Limit", D("1"), D("64000"), time_in_force="GTD"), "timeInForce"),
        (
            OrderRequest("BTCUSDT", "Buy", "Limit", D("1"), D("64000"), position_idx=1),
            "position idx not match",
        ),
        (OrderRequest("BTCUSDT", "Buy", "Limit", D("1"), D("64000"), order_link_id="x" * 37), "orderLinkId"),
        (OrderRequest("BTCUSDT", "Buy", "Limit", D("1"), D("64000"), order_link_id="bad id"), "orderLinkId"),
        (OrderRequest("BTCUSDT", "Buy", "Limit", D("0.0001"), D("64000")), "minimum limit"),
        (OrderRequest("BTCUSDT", "Buy", "Limit", D("1"), D("64000.05")), "tickSize"),
        (OrderRequest("BTCUSDT", "Buy", "Limit", D("1")), "price is required"),
        (OrderRequest("XRPUSDT", "Buy", "Limit", D("1"), D("1")), "XRPUSDT"),
    ],
)
def test_params_errors_are_10001(engine: MatchingEngine, req: OrderRequest, text: str) -> None:
    err = rejected(engine, "alice", req)
    assert err.ret_code == RetCode.PARAMS_ERROR and text in err.ret_msg


def test_notional_band_duplicate_and_balance(engine: MatchingEngine) -> None:
    assert rejected(engine, "alice", limit("Buy", "0.001", "4000")).ret_code == RetCode.NOTIONAL_BELOW_MIN
    engine.set_mark_price("BTCUSDT", D("64000"))
    err = rejected(engine, "alice", limit("Buy", "0.001", "65300"))
    assert err.ret_code == RetCode.PRICE_OUT_OF_RANGE and "permissible range" in err.ret_msg
    engine.submit("alice", limit("Sell", "0.001", "65300"))  # a sell above the mark is fine
    engine.submit("alice", limit("Buy", "0.01", "64000", order_link_id="once"))
    assert rejected(engine, "alice", limit("Buy", "0.01", "64000", order_link_id="once")).ret_code == (
        RetCode.DUPLICATE_ORDER_LINK_ID
    )
    engine.submit("bob", limit("Buy", "0.01", "64000", order_link_id="once"))  # ids are per account
    err = rejected(engine, "alice", limit("Buy", "20", "64000"))
    assert err.ret_code == RetCode.INSUFFICIENT_BALANCE
    assert engine.open_orders("mm") == []  # nothing of the rejected orders rests


def test_active_order_limit(engine: MatchingEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matching, "MAX_ACTIVE_ORDERS", 2)
    engine.submit("alice", limit("Buy", "0.01", "60000"))
    engine.submit("alice", limit("Buy", "0.01", "60000"))
    assert rejected(engine, "alice", limit("Buy", "0.01", "60000")).ret_code == RetCode.TOO_MANY_ACTIVE_ORDERS
    engine.submit("alice", OrderRequest("ETHUSDT", "Buy", "Limit", D("0.01"), D("3000")))  # per symbol


# -- reduce-only ------------------------------------------------------------------------------------------


def test_reduce_only_rules(engine: MatchingEngine) -> None:
    seed_book(engine)
    assert rejected(engine, "alice", market("Sell", "0.1", reduce_only=True)).ret_code == (
        RetCode.REDUCE_ONLY_NOT_SATISFIED
    )
    engine.submit("alice", market("Buy", "0.1"))
    assert rejected(engine, "alice", market("Buy", "0.1", reduce_only=True)).ret_code == (
        RetCode.REDUCE_ONLY_NOT_SATISFIED
    )
    # Larger than the position: capped to it, so it can never open a short.
    res = engine.submit("alice", limit("Sell", "0.5", "64100", reduce_only=True))
    assert res.order is not None and res.order.qty == D("0.1")
    account = engine.accounts.get("alice")
    assert account is not None and account.order_initial_margin() == 0


def test_resting_reduce_only_shrinks_when_position_shrinks(engine: MatchingEngine) -> None:
    seed_book(engine)
    engine.submit("alice", market("Buy", "0.3"))
    older = engine.submit("alice", limit("Sell", "0.2", "64100", reduce_only=True)).order
    newer = engine.submit("alice", limit("Sell", "0.1", "64200", reduce_only=True)).order
    assert older is not None and newer is not None
    res = engine.submit("alice", market("Sell", "0.15"))  # position 0.3 → 0.15
    cut = {u.order_id: u for u in res.order_updates if u.reduce_only}
    assert cut[newer.order_id].order_status == CANCELLED
    assert cut[newer.order_id].cancel_type == CANCEL_BY_REDUCE_ONLY
    assert cut[older.order_id].qty == D("0.15") and cut[older.order_id].order_status == NEW
    engine.book("BTCUSDT").check_invariants()


# -- cancel, amend ---------------------------------------------------------------------------------------


def test_cancel(engine: MatchingEngine) -> None:
    order = engine.submit("alice", limit("Buy", "0.01", "63000", order_link_id="c1")).order
    assert order is not None
    with pytest.raises(ExchangeError, match="required"):
        engine.cancel("alice", "BTCUSDT")
    with pytest.raises(ExchangeError) as info:
        engine.cancel("bob", "BTCUSDT", order_id=order.order_id)  # not bob's
    assert info.value.ret_code == RetCode.ORDER_NOT_EXISTS
    res = engine.cancel("alice", "BTCUSDT", order_link_id="c1")
    assert res.order is not None
    assert (res.order.order_status, res.order.cancel_type, res.order.leaves_qty) == (
        CANCELLED,
        CANCEL_BY_USER,
        0,
    )
    assert engine.book("BTCUSDT").best_bid() is None
    with pytest.raises(ExchangeError, match="too late to cancel"):
        engine.cancel("alice", "BTCUSDT", order_id=order.order_id)
    closed = engine.get_order("alice", order_link_id="c1")
    assert closed is not None and closed.order_status == CANCELLED


def test_cancel_all(engine: MatchingEngine) -> None:
    engine.submit("alice", limit("Buy", "0.01", "63000"))
    engine.submit("alice", OrderRequest("ETHUSDT", "Buy", "Limit", D("0.01"), D("3000")))
    engine.submit("bob", limit("Buy", "0.01", "63000"))
    assert len(engine.cancel_all("alice", "BTCUSDT").order_updates) == 1
    assert len(engine.cancel_all("alice").order_updates) == 1
    assert engine.cancel_all("alice").order_updates == []
    assert len(engine.open_orders("bob")) == 1


def test_amend_priority_rules(engine: MatchingEngine, clock: Clock) -> None:
    a = engine.submit("alice", limit("Sell", "0.5", "64100")).order
    b = engine.submit("bob", limit("Sell", "0.5", "64100")).order
    assert a is not None and b is not None
    book = engine.book("BTCUSDT")

    def queue() -> list[str]:
        return [oid for oid, _, _ in book.export()["Sell"][0][1]]

    clock.now += 10
    res = engine.amend("alice", "BTCUSDT", order_id=a.order_id, qty=D("0.3"))  # decrease: keeps place
    assert queue() == [a.order_id, b.order_id]
    assert res.order is not None and res.order.qty == D("0.3") and res.order.updated_time == T0 + 10
    engine.amend("alice", "BTCUSDT", order_id=a.order_id, qty=D("0.4"))  # increase: back of the queue
    assert queue() == [b.order_id, a.order_id]
    engine.amend("bob", "BTCUSDT", order_id=b.order_id, price=D("64100.1"))
    engine.amend("bob", "BTCUSDT", order_id=b.order_id, price=D("64100"))  # price change: back
    assert queue() == [a.order_id, b.order_id]
    book.check_invariants()


def test_amend_errors(engine: MatchingEngine) -> None:
    seed_book(engine)
    order = engine.submit("alice", limit("Buy", "1.5", "64000.10")).order  # fills 1, rests 0.5
    assert order is not None
    with pytest.raises(ExchangeError) as info:
        engine.amend("alice", "BTCUSDT", order_id=order.order_id, qty=D("1"))
    assert info.value.ret_code == RetCode.AMEND_QTY_NOT_ABOVE_FILLED
    with pytest.raises(ExchangeError, match="nothing"):
        engine.amend("alice", "BTCUSDT", order_id=order.order_id, price=D("64000.10"))
    with pytest.raises(ExchangeError, match="needs qty, price"):
        engine.amend("alice", "BTCUSDT", order_id=order.order_id)
    with pytest.raises(ExchangeError, match="too late to replace"):
        engine.amend("alice", "BTCUSDT", order_id="nope", qty=D("1"))
    res = engine.amend("alice", "BTCUSDT", order_id=order.order_id, qty=D("1.2"))
    assert res.order is not None and res.order.leaves_qty == D("0.2")
    assert res.order.order_status == PARTIALLY_FILLED


def test_amend_to_a_crossing_price(engine: MatchingEngine) -> None:
    seed_book(engine)
    gtc = engine.submit("alice", limit("Buy", "0.5", "64000.00")).order
    post = engine.submit("bob", limit("Buy", "0.5", "64000.00", "PostOnly")).order
    assert gtc is not None and post is not None
    res = engine.amend("alice", "BTCUSDT", order_id=gtc.order_id, price=D("64000.10"))
    assert res.order is not None and res.order.order_status == FILLED and len(res.trades) == 1
    res = engine.amend("bob", "BTCUSDT", order_id=post.order_id, price=D("64000.10"))
    assert res.order is not None and res.order.order_status == CANCELLED
    assert res.order.reject_reason == EC_POST_ONLY_WILL_TAKE_LIQUIDITY
    engine.book("BTCUSDT").check_invariants()


def test_funding_through_the_engine(engine: MatchingEngine) -> None:
    seed_book(engine)
    engine.submit("alice", market("Buy", "0.1"))
    engine.set_mark_price("BTCUSDT", D("64000"))
    records = engine.settle_funding("BTCUSDT", D("0.0001"))
    assert [(r.owner, r.exec_type, r.exec_fee) for r in records] == [("alice", "Funding", D("0.64"))]
    assert records[0].seq == engine.book("BTCUSDT").seq


def test_queue_position_behind_earlier_volume(engine: MatchingEngine) -> None:
    """docs/exchange_sim_market.md §16, check U2: a bid that joined behind 0.5 BTC fills only after that 0.5 has traded."""
    engine.submit("mm", limit("Buy", "0.5", "64000"))
    mine = engine.submit("alice", limit("Buy", "0.1", "64000")).order
    assert mine is not None
    assert engine.book("BTCUSDT").queue_ahead(mine.order_id) == 500
    res = engine.submit("mm", market("Sell", "0.5"))
    assert all(e.order_id != mine.order_id for e in res.executions)
    res = engine.submit("mm", market("Sell", "0.05"))
    fill = next(e for e in res.executions if e.order_id == mine.order_id)
    assert (fill.is_maker, fill.exec_price, fill.exec_qty) == (True, D("64000.00"), D("0.050"))
    assert fill.exec_fee == D("3200") * D("0.0002")


def test_self_match_is_allowed_and_nets_out(engine: MatchingEngine) -> None:
    engine.submit("alice", limit("Sell", "0.1", "64000"))
    res = engine.submit("alice", limit("Buy", "0.1", "64000"))
    assert {e.is_maker for e in res.executions} == {True, False}
    account = engine.accounts.get("alice")
    assert account is not None and account.position("BTCUSDT").qty == 0
    assert account.wallet_balance == D("100000") - D("6400") * (D("0.0002") + D("0.00055"))


def test_tick_directions(engine: MatchingEngine) -> None:
    for price in ("64000", "64000", "63999", "63999", "64001"):
        engine.submit("mm", limit("Sell", "0.01", price))
    directions = [engine.submit("alice", market("Buy", "0.01")).trades[0].tick_direction for _ in range(5)]
    # Buys lift the asks from the lowest up: 63999, 63999, 64000, 64000, 64001.
    assert directions == ["PlusTick", "ZeroPlusTick", "PlusTick", "ZeroPlusTick", "PlusTick"]
    for price in ("63990", "63990"):
        engine.submit("mm", limit("Buy", "0.01", price))
    directions = [engine.submit("alice", market("Sell", "0.01")).trades[0].tick_direction for _ in range(2)]
    assert directions == ["MinusTick", "ZeroMinusTick"]


def test_closed_order_cache_is_bounded(engine: MatchingEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matching, "CLOSED_ORDERS_KEPT", 2)
    ids = []
    for i in range(3):
        order = engine.submit("alice", limit("Buy", "0.01", "60000", order_link_id=f"k{i}")).order
        assert order is not None
        engine.cancel("alice", "BTCUSDT", order_id=order.order_id)
        ids.append(order.order_id)
    assert engine.get_order("alice", ids[0]) is None
    assert engine.get_order("alice", order_link_id="k2") is not None
    # orderLinkId stays single-use even after the order left the cache.
    assert rejected(engine, "alice", limit("Buy", "0.01", "60000", order_link_id="k0")).ret_code == (
        RetCode.DUPLICATE_ORDER_LINK_ID
    )


def test_symbols_are_independent(engine: MatchingEngine) -> None:
    engine.submit("mm", OrderRequest("ETHUSDT", "Sell", "Limit", D("1"), D("3400")))
    res = engine.submit("alice", limit("Buy", "0.1", "64000"))
    assert res.executions == [] and engine.book("ETHUSDT").best_ask() == 340_000


def test_same_seed_same_run(clock: Clock) -> None:
    def run() -> list[tuple[object, ...]]:
        registry = AccountRegistry(DEFAULT_INSTRUMENTS, clock)
        registry.open("alice", D("100000"))
        engine = MatchingEngine(registry)
        seed_book(engine)
        res = engine.submit("alice", limit("Buy", "1.5", "64000.20"))
        return [(e.exec_id, e.order_id, e.exec_qty) for e in res.executions]

    assert run() == run()


def test_amend_checks_band_and_notional(engine: MatchingEngine) -> None:
    order = engine.submit("alice", limit("Buy", "0.01", "64000")).order
    assert order is not None
    with pytest.raises(ExchangeError) as info:
        engine.amend("alice", "BTCUSDT", order_id=order.order_id, price=D("400"))
    assert info.value.ret_code == RetCode.NOTIONAL_BELOW_MIN
    engine.set_mark_price("BTCUSDT", D("64000"))
    with pytest.raises(ExchangeError) as info:
        engine.amend("alice", "BTCUSDT", order_id=order.order_id, price=D("66000"))
    assert info.value.ret_code == RetCode.PRICE_OUT_OF_RANGE
    live = engine.get_order("alice", order.order_id)
    assert live is not None and live.price == D("64000.00")  # rejected amends change nothing


# -- properties under random order flow -------------------------------------------------------------

ACCOUNTS = ("alice", "bob")
OWNERS = (*ACCOUNTS, "mm1", "mm2")
MID = 640_000  # ticks

_submit = st.tuples(
    st.just("submit"),
    st.sampled_from(OWNERS),
    st.sampled_from(["Buy", "Sell"]),
    st.sampled_from(["Limit", "Limit", "Limit", "Market"]),
    st.sampled_from(["GTC", "GTC", "IOC", "FOK", "PostOnly"]),
    st.integers(-6, 6),
    st.integers(1, 40),
    st.sampled_from([False, False, False, True]),
)
_cancel = st.tuples(st.just("cancel"), st.sampled_from(OWNERS), st.integers(0, 50))
_amend = st.tuples(
    st.just("amend"),
    st.sampled_from(OWNERS),
    st.integers(0, 50),
    st.one_of(st.none(), st.integers(1, 40)),
    st.one_of(st.none(), st.integers(-6, 6)),
)
_other = st.one_of(
    st.tuples(st.just("cancel_all"), st.sampled_from(OWNERS)),
    st.tuples(st.just("funding"), st.integers(-100, 100)),
)
# Submits dominate so that books fill up and orders meet; cancel-all and funding are occasional.
_ops = st.lists(
    st.integers(0, 99).flatmap(
        lambda k: _submit if k < 65 else _cancel if k < 75 else _amend if k < 90 else _other
    ),
    min_size=20,
    max_size=60,
)


def _queue_ids(engine: MatchingEngine, side: str) -> list[str]:
    return [oid for _, orders in engine.book("BTCUSDT").export()[side] for oid, _, _ in orders]


def _state(engine: MatchingEngine) -> tuple[object, ...]:
    accounts = tuple(
        (a.wallet_balance, tuple((s, p.qty, p.entry_value) for s, p in a.positions.items()))
        for a in engine.accounts
    )
    return engine.book("BTCUSDT").export(), accounts, tuple(o.snapshot() for o in engine._open.values())


def _check_command(engine: MatchingEngine, res: EngineResult, queue_before: list[str] | None) -> None:
    """Per command: fills pair up, respect the taker's limit, and hit makers in price-time order."""
    makers = [e for e in res.executions if e.is_maker]
    takers = [e for e in res.executions if not e.is_maker]
    assert [(e.exec_price, e.exec_qty, e.seq) for e in makers] == [
        (e.exec_price, e.exec_qty, e.seq) for e in takers
    ]
    assert len(res.trades) == len(makers)
    if not takers:
        return
    taker_side = takers[0].side
    prices = [e.exec_price for e in takers]
    assert prices == sorted(prices, reverse=taker_side == "Sell")
    subject = res.order
    assert subject is not None and all(e.order_id == subject.order_id for e in takers)
    for e in takers:
        assert e.exec_price <= subject.price if taker_side == "Buy" else e.exec_price >= subject.price
    assert queue_before is not None
    cut = {u.order_id for u in res.order_updates if u.cancel_type == CANCEL_BY_REDUCE_ONLY}
    expected = [oid for oid in queue_before if oid not in cut]
    hit: list[str] = []
    for e in makers:
        if not hit or hit[-1] != e.order_id:
            hit.append(e.order_id)
    assert hit == expected[: len(hit)], "makers were not matched in price-time order"
    for oid in hit[:-1]:
        assert engine.book("BTCUSDT").get(oid) is None, "a maker was skipped before it was exhausted"


def _check_global(engine: MatchingEngine, latest: dict[str, Order], execs: list[Execution]) -> None:
    book = engine.book("BTCUSDT")
    book.check_invariants()
    spec = book.instrument
    filled = {"Buy": D(0), "Sell": D(0)}
    per_order: dict[str, D] = {}
    for e in execs:
        if e.exec_type == "Trade":
            per_order[e.order_id] = per_order.get(e.order_id, D(0)) + e.exec_qty
    for oid, snap in latest.items():
        assert snap.qty == snap.cum_exec_qty + snap.leaves_qty + snap.cancelled_qty
        assert snap.cum_exec_qty == per_order.get(oid, D(0))
        filled[snap.side] += snap.cum_exec_qty
        entry = book.get(oid)
        if snap.is_open:
            live = engine._open[oid]
            # The last message sent for an order is its current state: no silent changes.
            assert (live.qty, live.leaves_qty, live.cum_exec_qty, live.price, live.order_status) == (
                snap.qty,
                snap.leaves_qty,
                snap.cum_exec_qty,
                snap.price,
                snap.order_status,
            )
            assert entry is not None and spec.lots_to_qty(entry.leaves) == snap.leaves_qty
            assert spec.ticks_to_price(entry.price) == snap.price
        else:
            assert entry is None and snap.leaves_qty == 0 and oid not in engine._open
    assert set(engine._open) <= set(latest)
    assert filled["Buy"] == filled["Sell"]
    for account in engine.accounts:
        own = [e for e in execs if e.owner == account.api_key]
        realised = sum((p.cum_realised_pnl for p in account.positions.values()), D(0))
        assert account.wallet_balance == account.deposited + realised
        assert account.wallet_balance == account.deposited + sum((e.exec_pnl - e.exec_fee for e in own), D(0))
        trades = [e for e in own if e.exec_type == "Trade"]
        net = sum((e.exec_qty if e.side == "Buy" else -e.exec_qty for e in trades), D(0))
        assert account.position("BTCUSDT").qty == net
        for side in ("Buy", "Sell"):
            resting = sum(
                (o.leaves_qty for o in account.open_orders.values() if o.reduce_only and o.side == side), D(0)
            )
            assert resting <= account.reducible_qty("BTCUSDT", side)


@settings(max_examples=300, deadline=None)
@given(ops=_ops)
def test_random_order_flow_keeps_every_invariant(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    clock = Clock()
    registry = AccountRegistry(DEFAULT_INSTRUMENTS, clock)
    for name in ACCOUNTS:
        registry.open(name, D("20000"))
    engine = MatchingEngine(registry)
    engine.set_mark_price("BTCUSDT", D("64000"))
    spec = engine.book("BTCUSDT").instrument
    latest: dict[str, Order] = {}
    execs: list[Execution] = []
    for op in ops:
        clock.now += 1
        before = _state(engine)
        queue_before = None
        try:
            if op[0] == "submit":
                _, owner, side, kind, tif, offset, lots, reduce_only = op
                price = spec.ticks_to_price(MID + offset) if kind == "Limit" else None
                queue_before = _queue_ids(engine, "Sell" if side == "Buy" else "Buy")
                req = OrderRequest("BTCUSDT", side, kind, spec.lots_to_qty(lots), price, tif, reduce_only)
                res = engine.submit(owner, req)
            elif op[0] in ("cancel", "amend"):
                mine = engine.open_orders(op[1], "BTCUSDT")
                if not mine:
                    continue
                target = mine[op[2] % len(mine)]
                if op[0] == "cancel":
                    res = engine.cancel(op[1], "BTCUSDT", order_id=target.order_id)
                else:
                    qty = spec.lots_to_qty(op[3]) if op[3] is not None else None
                    price = spec.ticks_to_price(MID + op[4]) if op[4] is not None else None
                    queue_before = _queue_ids(engine, "Sell" if target.side == "Buy" else "Buy")
                    res = engine.amend(op[1], "BTCUSDT", order_id=target.order_id, qty=qty, price=price)
            elif op[0] == "cancel_all":
                res = engine.cancel_all(op[1], "BTCUSDT")
            else:
                execs.extend(engine.settle_funding("BTCUSDT", D(op[1]) / 100000))
                res = EngineResult()
        except ExchangeError:
            assert _state(engine) == before, "a rejected request changed the exchange"
            continue
        _check_command(engine, res, queue_before)
        for update in res.order_updates:
            latest[update.order_id] = update
        execs.extend(res.executions)
        _check_global(engine, latest, execs)
