"""Unified accounts: one-way positions, PnL and fee bookkeeping, margin, leverage and funding."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_sim.accounts import Account, AccountRegistry, Position
from exchange_sim.errors import ExchangeError, InstrumentRuleError, RetCode
from exchange_sim.events import EXEC_FUNDING
from exchange_sim.instruments import DEFAULT_INSTRUMENTS

T0 = 1_767_225_600_000


@dataclass
class FakeOrder:
    order_id: str
    symbol: str
    side: str
    price: D
    leaves_qty: D
    reduce_only: bool = False


@pytest.fixture
def registry() -> AccountRegistry:
    return AccountRegistry(DEFAULT_INSTRUMENTS, lambda: T0)


@pytest.fixture
def account(registry: AccountRegistry) -> Account:
    return registry.open("key", D("10000"))


def assert_books_balance(account: Account) -> None:
    realised = sum((p.cum_realised_pnl for p in account.positions.values()), D(0))
    assert account.wallet_balance == account.deposited + realised


def test_position_margins_match_the_documented_example(account: Account) -> None:
    """docs/exchange_protocol.md §4.10: 0.010 BTC at 64 000, 10x → positionIM 64.352, positionMM 3.552."""
    effect = account.apply_trade("BTCUSDT", "Buy", D("64000"), D("0.010"), True, T0, 1)
    assert effect.fee == D("0.128") and effect.fee_rate == D("0.0002")
    pos = account.position("BTCUSDT")
    assert (pos.side, pos.size, pos.avg_price) == ("Buy", D("0.010"), D("64000"))
    assert pos.initial_margin(account.taker_fee_rate) == D("64.352")
    assert pos.maintenance_margin(D("0.005"), account.taker_fee_rate) == D("3.552")
    assert pos.cur_realised_pnl == D("-0.128")
    assert_books_balance(account)


def test_taker_fee_example(account: Account) -> None:
    """§7.1: 0.010 BTC at 64 100 as taker → 641 × 0.00055 = 0.35255."""
    effect = account.apply_trade("BTCUSDT", "Sell", D("64100"), D("0.010"), False, T0, 1)
    assert effect.fee == D("0.35255") and effect.fee_rate == D("0.00055")


def test_close_with_profit(account: Account) -> None:
    account.apply_trade("BTCUSDT", "Buy", D("64000"), D("0.010"), True, T0, 1)
    effect = account.apply_trade("BTCUSDT", "Sell", D("64100"), D("0.010"), False, T0, 2)
    assert effect.closed_size == D("0.010") and effect.exec_pnl == D("1")
    pos = account.position("BTCUSDT")
    assert (pos.side, pos.size, pos.entry_value) == ("", 0, 0)
    assert pos.cum_realised_pnl == D("1") - D("0.128") - D("0.35255")
    assert account.wallet_balance == D("10000") + D("1") - D("0.128") - D("0.35255")
    assert_books_balance(account)


def test_short_partial_close_keeps_average(account: Account) -> None:
    account.apply_trade("ETHUSDT", "Sell", D("3400"), D("1"), True, T0, 1)
    account.apply_trade("ETHUSDT", "Sell", D("3500"), D("1"), True, T0, 2)
    pos = account.position("ETHUSDT")
    assert pos.avg_price == D("3450") and pos.side == "Sell"
    effect = account.apply_trade("ETHUSDT", "Buy", D("3300"), D("0.5"), True, T0, 3)
    assert effect.exec_pnl == D("75")  # (3450 - 3300) × 0.5
    assert pos.avg_price == D("3450") and pos.size == D("1.5")
    assert_books_balance(account)


def test_flip_through_zero(account: Account) -> None:
    account.apply_trade("SOLUSDT", "Buy", D("150"), D("2"), True, T0, 1)
    effect = account.apply_trade("SOLUSDT", "Sell", D("151"), D("5"), True, T0, 2)
    assert effect.closed_size == D("2") and effect.exec_pnl == D("2")
    pos = account.position("SOLUSDT")
    assert (pos.side, pos.size, pos.avg_price) == ("Sell", D("3"), D("151"))
    assert account.reducible_qty("SOLUSDT", "Buy") == D("3")
    assert account.reducible_qty("SOLUSDT", "Sell") == 0
    assert_books_balance(account)


def test_unrealised_pnl_at_mark(registry: AccountRegistry, account: Account) -> None:
    account.apply_trade("BTCUSDT", "Buy", D("64000"), D("0.010"), True, T0, 1)
    account.apply_trade("ETHUSDT", "Sell", D("3400"), D("1"), True, T0, 2)
    registry.marks.set_mark("BTCUSDT", D("64001.20"))
    registry.marks.set_mark("ETHUSDT", D("3390"))
    assert account.position("BTCUSDT").unrealised_pnl(D("64001.20")) == D("0.012")
    assert account.unrealised_pnl() == D("0.012") + D("10")
    summary = account.summary()
    assert summary.equity == account.wallet_balance + D("10.012")
    assert summary.available_balance == summary.equity - summary.total_position_im - summary.total_order_im
    with pytest.raises(ValueError, match="positive"):
        registry.marks.set_mark("BTCUSDT", D("0"))


def test_order_margin_nets_against_the_position(account: Account) -> None:
    cost = account.order_cost("BTCUSDT", D("0.010"), D("64000"))
    assert cost == D("64") + D("640") * D("0.00055") * 2
    buy = FakeOrder("b", "BTCUSDT", "Buy", D("64000"), D("0.010"))
    sell = FakeOrder("s", "BTCUSDT", "Sell", D("64000"), D("0.010"))
    assert account.order_initial_margin([buy]) == cost
    # Opposite orders of one symbol cannot both add exposure: only the larger side counts.
    assert account.order_initial_margin([buy, sell]) == cost
    account.apply_trade("BTCUSDT", "Buy", D("64000"), D("0.010"), True, T0, 1)
    assert account.order_initial_margin([sell]) == 0  # closes the long: no margin
    bigger = FakeOrder("s2", "BTCUSDT", "Sell", D("64000"), D("0.020"))
    assert account.order_initial_margin([bigger]) == cost  # half of it opens a short
    assert account.order_initial_margin([FakeOrder("r", "BTCUSDT", "Buy", D("1"), D("9"), True)]) == 0


def test_insufficient_balance_is_110007(registry: AccountRegistry) -> None:
    poor = registry.open("poor", D("100"))
    fits = FakeOrder("a", "BTCUSDT", "Buy", D("64000"), D("0.015"))
    poor.check_order_margin(fits)
    too_big = FakeOrder("b", "BTCUSDT", "Buy", D("64000"), D("0.016"))
    with pytest.raises(ExchangeError) as info:
        poor.check_order_margin(too_big)
    assert info.value.ret_code == RetCode.INSUFFICIENT_BALANCE
    assert info.value.ret_msg.startswith("ab not enough for new order")
    # Replacing an open order is priced net of the order it replaces.
    poor.open_orders["a"] = fits
    poor.check_order_margin(FakeOrder("a", "BTCUSDT", "Buy", D("64000"), D("0.015")), replacing="a")
    with pytest.raises(ExchangeError):
        poor.check_order_margin(FakeOrder("c", "BTCUSDT", "Buy", D("64000"), D("0.002")))


def test_set_leverage(account: Account) -> None:
    account.apply_trade("BTCUSDT", "Buy", D("64000"), D("0.010"), True, T0, 1)
    pos = account.set_leverage("BTCUSDT", D("20"), D("20"))
    assert pos.initial_margin(account.taker_fee_rate) == D("32") + D("0.352")
    with pytest.raises(ExchangeError) as info:
        account.set_leverage("BTCUSDT", D("20"), D("20"))
    assert info.value.ret_code == RetCode.LEVERAGE_NOT_MODIFIED
    with pytest.raises(ExchangeError, match="must equal sellLeverage"):
        account.set_leverage("BTCUSDT", D("5"), D("6"))
    with pytest.raises(InstrumentRuleError, match="buyLeverage"):
        account.set_leverage("BTCUSDT", D("0.5"), D("0.5"))


def test_funding_long_pays_short_receives(registry: AccountRegistry) -> None:
    long, short, flat = (
        registry.open("L", D("1000")),
        registry.open("S", D("1000")),
        registry.open("F", D("1")),
    )
    long.apply_trade("BTCUSDT", "Buy", D("64000"), D("0.010"), True, T0, 1)
    short.apply_trade("BTCUSDT", "Sell", D("64000"), D("0.010"), True, T0, 1)
    before = {a.api_key: a.wallet_balance for a in (long, short, flat)}
    records = registry.settle_funding("BTCUSDT", D("0.0001"), D("64100"))
    assert [(r.owner, r.side, r.exec_fee) for r in records] == [
        ("L", "Buy", D("0.0641")),
        ("S", "Sell", D("-0.0641")),
    ]
    rec = records[0]
    assert rec.exec_type == EXEC_FUNDING and rec.order_type == "UNKNOWN" and rec.order_id == ""
    assert (rec.exec_price, rec.exec_qty, rec.exec_value, rec.fee_rate) == (
        D("64100"),
        D("0.010"),
        D("641.000"),
        D("0.0001"),
    )
    assert long.wallet_balance == before["L"] - D("0.0641")
    assert short.wallet_balance == before["S"] + D("0.0641")
    assert flat.wallet_balance == before["F"]
    # Funding is not a trade: size and entry are untouched.
    assert long.position("BTCUSDT").avg_price == D("64000")
    for acct in (long, short, flat):
        assert_books_balance(acct)


def test_funding_argument_checks(registry: AccountRegistry) -> None:
    with pytest.raises(ValueError, match="outside"):
        registry.settle_funding("BTCUSDT", D("0.01"), D("64000"))
    with pytest.raises(ValueError, match="no mark price"):
        registry.settle_funding("BTCUSDT", D("0.0001"))
    with pytest.raises(ExchangeError):
        registry.settle_funding("XRPUSDT", D("0.0001"), D("1"))
    with pytest.raises(ValueError, match="already exists"):
        registry.open("dup", D(1)) and registry.open("dup", D(1))


def test_fresh_holding_restarts_cur_realised(account: Account) -> None:
    account.apply_trade("BTCUSDT", "Buy", D("64000"), D("0.010"), True, T0, 1)
    account.apply_trade("BTCUSDT", "Sell", D("64000"), D("0.010"), True, T0, 2)
    account.apply_trade("BTCUSDT", "Buy", D("64000"), D("0.010"), True, T0 + 5, 3)
    pos: Position = account.position("BTCUSDT")
    assert pos.cur_realised_pnl == D("-0.128")
    assert pos.cum_realised_pnl == D("-0.384")
    assert pos.created_time == T0 + 5


_fill = st.tuples(
    st.sampled_from(["Buy", "Sell"]),
    st.integers(600_000, 680_000),  # BTC ticks
    st.integers(1, 50),  # lots
    st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(fills=st.lists(_fill, min_size=1, max_size=40), rate=st.integers(-375, 375))
def test_bookkeeping_is_exact(fills: list[tuple[str, int, int, bool]], rate: int) -> None:
    """Wallet = deposit + Σ(closed PnL − fees + funding), exactly; flat ⇒ PnL = cash flows − fees."""
    registry = AccountRegistry(DEFAULT_INSTRUMENTS, lambda: T0)
    acct = registry.open("k", D("1000000"))
    cash = D(0)
    fees = D(0)
    pnl = D(0)
    qty = D(0)
    for i, (side, ticks, lots, maker) in enumerate(fills):
        price, size = D(ticks) / 10, D(lots) / 1000
        effect = acct.apply_trade("BTCUSDT", side, price, size, maker, T0, i)
        cash += -price * size if side == "Buy" else price * size
        qty += size if side == "Buy" else -size
        fees += effect.fee
        pnl += effect.exec_pnl
        assert effect.fee == price * size * (D("0.0002") if maker else D("0.00055"))
        assert_books_balance(acct)
    pos = acct.position("BTCUSDT")
    assert pos.qty == qty and pos.entry_value >= 0
    assert acct.wallet_balance == D("1000000") + pnl - fees
    funding = registry.settle_funding("BTCUSDT", D(rate) / 100000, D("64000"))
    assert_books_balance(acct)
    assert len(funding) == (1 if qty else 0)
    if not qty:
        assert pnl == cash  # a round trip's gross PnL is exactly its cash flow
