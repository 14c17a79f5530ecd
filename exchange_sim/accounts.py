"""Unified Trading Accounts of the paper exchange: USDT wallet, one-way linear positions, margin, funding.

One :class:`Account` per API key. Cross margin, USDT only, one-way mode (``positionIdx`` 0): one signed
net position per symbol. Margin follows Bybit's own worked example (docs/exchange_protocol.md §4.10):

* position IM = value / leverage + value × taker fee (the fee to close): 640 USDT at 10x → 64.352;
* position MM = value × maintenance margin rate + the same close fee: 640 × 0.005 + 0.352 → 3.552;
* order cost = value / leverage + value × taker fee × 2 (Bybit's "initial margin + fee to open + fee to
  close"), valued at the order price;
* available balance = wallet + unrealised PnL − position IM − order IM (UTA ``totalAvailableBalance``).

Order margin is netted per symbol the way one-way mode allows: orders on the side opposite the position
need margin only for the part that exceeds the position, and only the larger side counts, because the
buy and sell orders of one symbol cannot both add exposure at once.

Bookkeeping is exact: every fill moves ``walletBalance`` by exactly (gross closed PnL − fee), funding by
exactly the funding fee, and both amounts go into ``curRealisedPnl``/``cumRealisedPnl``. So for every
account ``wallet_balance == deposited + Σ cum_realised_pnl`` holds to the last digit; tests check it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from exchange_sim.errors import ExchangeError, RetCode
from exchange_sim.events import EXEC_FUNDING, ZERO, Execution, IdFactory
from exchange_sim.instruments import Instrument, get_instrument

DEFAULT_MAKER_FEE_RATE = Decimal("0.0002")
DEFAULT_TAKER_FEE_RATE = Decimal("0.00055")
DEFAULT_LEVERAGE = Decimal(10)
# Money that involves a division (the basis released by a partial close) or a rate is rounded to 1e-12
# USDT. That is far below Bybit's own display precision, and it keeps every balance within Decimal's
# 28 significant digits, so sums stay exact: no drift however many fills an account sees.
MONEY_QUANTUM = Decimal("1e-12")


class OpenOrderLike(Protocol):
    """What the margin calculation needs from an open order (the engine's ``Order`` satisfies it)."""

    order_id: str
    symbol: str
    side: str
    price: Decimal
    leaves_qty: Decimal
    reduce_only: bool


class MarkPrices:
    """Mark prices per symbol, falling back to the last traded price until a mark has been set."""

    def __init__(self) -> None:
        self._mark: dict[str, Decimal] = {}
        self._last: dict[str, Decimal] = {}

    def set_mark(self, symbol: str, price: Decimal) -> None:
        """Set the mark price (the market generator's EWMA of the mid, docs/exchange_sim_market.md §13)."""
        if price <= 0:
            raise ValueError(f"mark price of {symbol} must be positive, got {price}")
        self._mark[symbol] = price

    def note_trade(self, symbol: str, price: Decimal) -> None:
        """Record the last traded price (the fallback mark)."""
        self._last[symbol] = price

    def get(self, symbol: str) -> Decimal | None:
        """The mark price, else the last traded price, else ``None``."""
        return self._mark.get(symbol) or self._last.get(symbol)


@dataclass(slots=True)
class Position:
    """A one-way net position. ``qty`` is signed (long > 0); ``entry_value`` is the cost basis of ``|qty|``.

    Keeping the cost basis instead of an average price makes closes exact: a full close releases exactly
    the remaining ``entry_value``, so the PnL of an open-to-flat cycle equals its cash flows exactly.
    """

    symbol: str
    leverage: Decimal
    qty: Decimal = ZERO
    entry_value: Decimal = ZERO
    cur_realised_pnl: Decimal = ZERO
    cum_realised_pnl: Decimal = ZERO
    created_time: int = 0
    updated_time: int = 0
    seq: int = -1
    # The position's Full-mode TP/SL (trading-stop, or attached to a filled order): shown as the
    # position's takeProfit/stopLoss; the orders that carry them live in exchange_sim/conditional.py.
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    tp_trigger_by: str = "LastPrice"
    sl_trigger_by: str = "LastPrice"

    @property
    def side(self) -> str:
        """``Buy`` (long), ``Sell`` (short) or ``""`` (flat), as Bybit reports it."""
        return "Buy" if self.qty > 0 else "Sell" if self.qty < 0 else ""

    @property
    def size(self) -> Decimal:
        """Absolute size in base coin."""
        return abs(self.qty)

    @property
    def avg_price(self) -> Decimal:
        """Average entry price (``avgPrice``/``entryPrice``); 0 when flat."""
        return self.entry_value / self.size if self.qty else ZERO

    def unrealised_pnl(self, mark: Decimal | None) -> Decimal:
        """PnL of the open position at ``mark`` (0 without a mark)."""
        if not self.qty or mark is None:
            return ZERO
        pnl = mark * self.size - self.entry_value
        return pnl if self.qty > 0 else -pnl

    def initial_margin(self, taker_fee_rate: Decimal) -> Decimal:
        """``positionIM``: value / leverage plus the taker fee to close."""
        return self.entry_value / self.leverage + self.entry_value * taker_fee_rate

    def maintenance_margin(self, mmr: Decimal, taker_fee_rate: Decimal) -> Decimal:
        """``positionMM``: value × maintenance rate plus the taker fee to close."""
        return self.entry_value * mmr + self.entry_value * taker_fee_rate


@dataclass(frozen=True, slots=True)
class TradeEffect:
    """What one fill did to an account: the fee, the rate used, and the closed part with its gross PnL."""

    fee: Decimal
    fee_rate: Decimal
    closed_size: Decimal
    exec_pnl: Decimal


@dataclass(frozen=True, slots=True)
class WalletSummary:
    """The USDT coin and account totals of ``GET /v5/account/wallet-balance`` (docs/exchange_protocol.md §4.12)."""

    wallet_balance: Decimal
    unrealised_pnl: Decimal
    equity: Decimal
    total_position_im: Decimal
    total_position_mm: Decimal
    total_order_im: Decimal
    available_balance: Decimal
    cum_realised_pnl: Decimal


class Account:
    """A Unified Trading Account identified by its API key."""

    def __init__(
        self,
        api_key: str,
        wallet_balance: Decimal,
        instruments: Mapping[str, Instrument],
        marks: MarkPrices,
        clock: Callable[[], int],
        *,
        maker_fee_rate: Decimal = DEFAULT_MAKER_FEE_RATE,
        taker_fee_rate: Decimal = DEFAULT_TAKER_FEE_RATE,
        default_leverage: Decimal = DEFAULT_LEVERAGE,
    ) -> None:
        if wallet_balance < 0:
            raise ValueError(f"account {api_key}: initial wallet balance must be >= 0, got {wallet_balance}")
        self.api_key = api_key
        self.wallet_balance = wallet_balance
        self.deposited = wallet_balance
        self.maker_fee_rate = maker_fee_rate
        self.taker_fee_rate = taker_fee_rate
        self.default_leverage = default_leverage
        self.instruments = instruments
        self.marks = marks
        self.clock = clock
        self.positions: dict[str, Position] = {}
        self.open_orders: dict[str, OpenOrderLike] = {}

    # -- positions and leverage ------------------------------------------------------------------

    def position(self, symbol: str) -> Position:
        """The position in ``symbol`` (a flat one is created on first use, as Bybit lists it)."""
        pos = self.positions.get(symbol)
        if pos is None:
            get_instrument(symbol, self.instruments)
            pos = Position(symbol, self.default_leverage, created_time=self.clock())
            self.positions[symbol] = pos
        return pos

    def set_leverage(self, symbol: str, buy_leverage: Decimal, sell_leverage: Decimal) -> Position:
        """``set-leverage``: both sides equal in one-way mode; unchanged value → 110043."""
        spec = get_instrument(symbol, self.instruments)
        spec.validate_leverage(buy_leverage, "buyLeverage")
        spec.validate_leverage(sell_leverage, "sellLeverage")
        if buy_leverage != sell_leverage:
            raise ExchangeError(
                RetCode.PARAMS_ERROR,
                f"params error: buyLeverage {buy_leverage} must equal sellLeverage {sell_leverage} "
                "in one-way mode",
            )
        pos = self.position(symbol)
        if pos.leverage == buy_leverage:
            raise ExchangeError(RetCode.LEVERAGE_NOT_MODIFIED, "Set leverage not modified")
        pos.leverage = buy_leverage
        pos.updated_time = self.clock()
        return pos

    def reducible_qty(self, symbol: str, side: str) -> Decimal:
        """How much a ``side`` order can reduce the current position (0 if flat or same side)."""
        pos = self.positions.get(symbol)
        if pos is None or not pos.qty or (pos.qty > 0) == (side == "Buy"):
            return ZERO
        return pos.size

    # -- fills and funding -------------------------------------------------------------------------

    def apply_trade(
        self, symbol: str, side: str, price: Decimal, qty: Decimal, is_maker: bool, ts: int, seq: int
    ) -> TradeEffect:
        """Apply one fill to the position and wallet; return its fee and closed PnL (gross)."""
        if qty <= 0 or price <= 0:
            raise ValueError(f"fill of {symbol}: price and qty must be positive, got {price} x {qty}")
        rate = self.maker_fee_rate if is_maker else self.taker_fee_rate
        value = price * qty
        fee = (value * rate).quantize(MONEY_QUANTUM)
        pos = self.position(symbol)
        delta = qty if side == "Buy" else -qty
        closed = ZERO
        pnl = ZERO
        if pos.qty and (pos.qty > 0) != (delta > 0):
            closed = min(qty, pos.size)
            # The last close takes the whole remaining basis, so rounding never accumulates.
            basis = (
                pos.entry_value
                if closed == pos.size
                else (pos.entry_value * closed / pos.size).quantize(MONEY_QUANTUM)
            )
            pnl = price * closed - basis if pos.qty > 0 else basis - price * closed
            pos.entry_value -= basis
            pos.qty += closed if pos.qty < 0 else -closed
            opened = qty - closed
        else:
            opened = qty
        if opened:
            if not pos.qty and not closed:
                # A fresh holding from flat: curRealisedPnl is per holding, so it restarts. A flip keeps
                # accumulating, since the same fill also closed the previous holding.
                pos.cur_realised_pnl = ZERO
                pos.created_time = ts
            pos.qty += opened if delta > 0 else -opened
            pos.entry_value += price * opened
        if not pos.qty:
            pos.entry_value = ZERO
        realised = pnl - fee
        pos.cur_realised_pnl += realised
        pos.cum_realised_pnl += realised
        pos.updated_time = ts
        pos.seq = seq
        self.wallet_balance += realised
        return TradeEffect(fee=fee, fee_rate=rate, closed_size=closed, exec_pnl=pnl)

    def settle_funding(
        self, symbol: str, funding_rate: Decimal, mark: Decimal, ts: int, exec_id: str, seq: int
    ) -> Execution | None:
        """Pay or receive funding on the ``symbol`` position: value at ``mark`` × ``funding_rate``.

        Longs pay and shorts receive when the rate is positive. Returns the ``execType: "Funding"``
        execution (``execFee`` > 0 means paid), or ``None`` when flat. It is not a trade: the position's
        size and entry are untouched; the amount goes to the wallet and the realised PnL.
        """
        pos = self.positions.get(symbol)
        if pos is None or not pos.qty:
            return None
        value = pos.size * mark
        fee = (value * funding_rate if pos.qty > 0 else -value * funding_rate).quantize(MONEY_QUANTUM)
        self.wallet_balance -= fee
        pos.cur_realised_pnl -= fee
        pos.cum_realised_pnl -= fee
        pos.updated_time = ts
        pos.seq = seq
        return Execution(
            exec_id=exec_id,
            exec_type=EXEC_FUNDING,
            owner=self.api_key,
            symbol=symbol,
            side=pos.side,
            order_id="",
            order_link_id="",
            order_type="UNKNOWN",
            order_price=ZERO,
            order_qty=ZERO,
            leaves_qty=ZERO,
            exec_price=mark,
            exec_qty=pos.size,
            exec_value=value,
            exec_fee=fee,
            fee_rate=funding_rate,
            is_maker=False,
            exec_time=ts,
            seq=seq,
            mark_price=mark,
        )

    # -- margin ------------------------------------------------------------------------------------

    def order_cost(self, symbol: str, qty: Decimal, price: Decimal) -> Decimal:
        """Margin an opening order of ``qty`` at ``price`` ties up (IM + fee to open + fee to close)."""
        value = qty * price
        return value / self.position(symbol).leverage + value * self.taker_fee_rate * 2

    def order_initial_margin(
        self, extra: Iterable[OpenOrderLike] = (), exclude: str | None = None
    ) -> Decimal:
        """``totalOrderIM`` over the open orders, netted per symbol.

        ``extra`` adds hypothetical orders and ``exclude`` leaves out one open order by id, so that a new
        order or an amendment can be priced before it is applied.
        """
        per_side: dict[tuple[str, str], list[Decimal]] = {}
        kept = [o for o in self.open_orders.values() if o.order_id != exclude]
        for order in (*kept, *extra):
            if order.reduce_only or order.leaves_qty <= 0:
                continue  # reduce-only orders can only shrink the position: no margin
            acc = per_side.setdefault((order.symbol, order.side), [ZERO, ZERO])
            acc[0] += order.leaves_qty
            acc[1] += self.order_cost(order.symbol, order.leaves_qty, order.price)
        by_symbol: dict[str, Decimal] = {}
        for (symbol, side), (qty, cost) in per_side.items():
            uncovered = max(ZERO, qty - self.reducible_qty(symbol, side))
            netted = cost * uncovered / qty
            by_symbol[symbol] = max(by_symbol.get(symbol, ZERO), netted)
        return sum(by_symbol.values(), ZERO)

    def unrealised_pnl(self) -> Decimal:
        """``totalPerpUPL`` at the current marks."""
        return sum((p.unrealised_pnl(self.marks.get(s)) for s, p in self.positions.items()), ZERO)

    def position_initial_margin(self) -> Decimal:
        """``totalPositionIM``."""
        return sum((p.initial_margin(self.taker_fee_rate) for p in self.positions.values()), ZERO)

    def available_balance(self, extra: Iterable[OpenOrderLike] = ()) -> Decimal:
        """``totalAvailableBalance``: margin balance minus position and order initial margin."""
        return (
            self.wallet_balance
            + self.unrealised_pnl()
            - self.position_initial_margin()
            - self.order_initial_margin(extra)
        )

    def check_order_margin(self, order: OpenOrderLike, replacing: str | None = None) -> None:
        """Refuse with 110007 an order whose additional margin exceeds the available balance.

        ``replacing`` is the id of the open order that ``order`` would replace (an amendment).
        """
        before = self.order_initial_margin()
        after = self.order_initial_margin((order,), exclude=replacing)
        if after > before and after - before > self.available_balance():
            raise ExchangeError(
                RetCode.INSUFFICIENT_BALANCE,
                f"ab not enough for new order: {order.symbol} {order.side} {order.leaves_qty} @ "
                f"{order.price} needs {after - before} USDT, available {self.available_balance()}",
            )

    def summary(self) -> WalletSummary:
        """Balances and margins for the wallet-balance endpoint and ``wallet`` topic."""
        upl = self.unrealised_pnl()
        mm = sum(
            (
                p.maintenance_margin(self.instruments[s].maintenance_margin_rate, self.taker_fee_rate)
                for s, p in self.positions.items()
            ),
            ZERO,
        )
        return WalletSummary(
            wallet_balance=self.wallet_balance,
            unrealised_pnl=upl,
            equity=self.wallet_balance + upl,
            total_position_im=self.position_initial_margin(),
            total_position_mm=mm,
            total_order_im=self.order_initial_margin(),
            available_balance=self.available_balance(),
            cum_realised_pnl=sum((p.cum_realised_pnl for p in self.positions.values()), ZERO),
        )


class AccountRegistry:
    """All accounts of the paper exchange by API key, with the shared mark prices and exec ids."""

    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        clock: Callable[[], int],
        marks: MarkPrices | None = None,
        ids: Callable[[], str] | None = None,
    ) -> None:
        self.instruments = instruments
        self.clock = clock
        self.marks = marks if marks is not None else MarkPrices()
        self.ids = ids if ids is not None else IdFactory(seed=1)
        self._accounts: dict[str, Account] = {}
        self._funding_seq = 0

    def open(
        self,
        api_key: str,
        wallet_balance: Decimal,
        *,
        maker_fee_rate: Decimal = DEFAULT_MAKER_FEE_RATE,
        taker_fee_rate: Decimal = DEFAULT_TAKER_FEE_RATE,
        default_leverage: Decimal = DEFAULT_LEVERAGE,
    ) -> Account:
        """Create the account of ``api_key`` with ``wallet_balance`` USDT."""
        if api_key in self._accounts:
            raise ValueError(f"account {api_key!r} already exists")
        account = Account(
            api_key,
            wallet_balance,
            self.instruments,
            self.marks,
            self.clock,
            maker_fee_rate=maker_fee_rate,
            taker_fee_rate=taker_fee_rate,
            default_leverage=default_leverage,
        )
        self._accounts[api_key] = account
        return account

    def get(self, api_key: str) -> Account | None:
        """The account of ``api_key``, or ``None`` (e.g. a synthetic market participant)."""
        return self._accounts.get(api_key)

    def __contains__(self, api_key: object) -> bool:
        return api_key in self._accounts

    def __iter__(self) -> Iterator[Account]:
        return iter(self._accounts.values())

    def settle_funding(
        self, symbol: str, funding_rate: Decimal, mark: Decimal | None = None, seq: int | None = None
    ) -> list[Execution]:
        """Settle one funding interval of ``symbol`` for every account with a position in it.

        ``mark`` defaults to the current mark price; the rate must lie within the instrument's caps.
        ``seq`` is the symbol's cross sequence to stamp on the records (the engine passes its book's);
        without it a registry-local counter is used.
        """
        spec = get_instrument(symbol, self.instruments)
        if not spec.lower_funding_rate <= funding_rate <= spec.upper_funding_rate:
            raise ValueError(
                f"funding rate {funding_rate} of {symbol} outside "
                f"[{spec.lower_funding_rate}, {spec.upper_funding_rate}]"
            )
        price = mark if mark is not None else self.marks.get(symbol)
        if price is None:
            raise ValueError(f"settle_funding({symbol}): no mark price set and none given")
        ts = self.clock()
        out = []
        if seq is None:
            self._funding_seq += 1
            seq = self._funding_seq
        for account in self._accounts.values():
            record = account.settle_funding(symbol, funding_rate, price, ts, self.ids(), seq)
            if record is not None:
                out.append(record)
        return out
