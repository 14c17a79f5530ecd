"""The venue: one object holding the paper exchange's clock, instruments, engine, accounts and market.

Everything that changes exchange state goes through :class:`Venue`, on the event loop's thread, so no
locks are needed: REST commands (:meth:`Venue.create_order` …), the market source driven by
:meth:`Venue.step`, and the funding timer. Each change yields private stream messages per account in the
order of docs/exchange_protocol.md §6.8 (``execution`` → ``order`` → ``position`` → ``wallet``), returned as a list so
the REST handler decides whether they go out before or after its reply; public effects (trades, candles)
go to registered listeners at once. The venue also keeps what the read endpoints need: every account
order's latest state, executions, recent public trades and klines.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import structlog

from exchange_sim import wire
from exchange_sim.accounts import Account, AccountRegistry
from exchange_sim.clock import ExchangeClock
from exchange_sim.config import SimConfig
from exchange_sim.events import Execution, IdFactory, Order, PublicTrade
from exchange_sim.instruments import DEFAULT_INSTRUMENTS, Instrument
from exchange_sim.klines import Candle, KlineBook
from exchange_sim.matching import EngineResult, MatchingEngine, OrderRequest
from exchange_sim.tpsl import TradingStopRequest

log = structlog.get_logger(__name__)

RECENT_TRADES_KEPT = 1_000
DRIVER_BURST_S = 0.02  # the driver yields to the event loop (sockets, REST) after this much wall time
SPEED_REPORT_S = 1.0  # how often the driver checks the achieved speed
SLOW_RATIO = 0.95  # achieved below this share of the requested speed counts as slow
SLOW_WARN_EVERY_S = 30.0  # at most one "slower than requested" warning per this much wall time
ORDERS_KEPT = 50_000  # per account: order history store
EXECUTIONS_KEPT = 100_000  # per account


@runtime_checkable
class MarketSource(Protocol):
    """Simulated order flow: submits through the venue's engine up to exchange time ``to_ms``.

    It may also offer ``ground_truth() -> list`` (manipulation episodes, served at
    ``GET /sim/ground-truth``), ``funding_rate(symbol) -> Decimal`` (used at each funding settlement
    instead of the configured default) and ``kline_history(before_ms) -> dict[symbol, list[Candle]]``
    (one-minute klines loaded once, before the first ``advance``); all are looked up with ``getattr``.
    """

    def advance(self, to_ms: int) -> list[EngineResult]:
        """Run the market up to ``to_ms`` and return every engine result it produced, in order."""
        ...


class PublicListener(Protocol):
    """Receives public effects as they happen (the public WebSocket server)."""

    def on_trades(self, symbol: str, trades: list[PublicTrade]) -> None:
        """Trades of ``symbol``, oldest first."""

    def on_candles(self, symbol: str, candles: list[Candle]) -> None:
        """Candles of ``symbol`` that just closed (``confirm`` true)."""


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    """One private stream message for one account: ``topic`` and its ``data`` items."""

    api_key: str
    topic: str
    data: list[dict[str, Any]]


class PrivateHub:
    """Fan-out of private messages to the authenticated private WebSocket connections of each key."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[PrivateMessage]]] = {}

    def subscribe(self, api_key: str) -> asyncio.Queue[PrivateMessage]:
        """A new queue receiving every message for ``api_key`` from now on."""
        queue: asyncio.Queue[PrivateMessage] = asyncio.Queue()
        self._queues.setdefault(api_key, set()).add(queue)
        return queue

    def unsubscribe(self, api_key: str, queue: asyncio.Queue[PrivateMessage]) -> None:
        """Stop delivering to ``queue``."""
        self._queues.get(api_key, set()).discard(queue)

    def publish(self, messages: Iterable[PrivateMessage]) -> None:
        """Deliver ``messages`` in order to every queue of their account."""
        for message in messages:
            for queue in self._queues.get(message.api_key, ()):
                queue.put_nowait(message)


class Venue:
    """The paper exchange's state and its single point of change."""

    def __init__(self, config: SimConfig, clock: ExchangeClock | None = None) -> None:
        unknown = [s for s in config.symbols if s not in DEFAULT_INSTRUMENTS]
        if unknown:
            raise ValueError(f"unknown symbols {unknown}; known: {sorted(DEFAULT_INSTRUMENTS)}")
        self.config = config
        self.clock = clock if clock is not None else ExchangeClock(config.speed, config.start_ms)
        self.instruments: dict[str, Instrument] = {s: DEFAULT_INSTRUMENTS[s] for s in config.symbols}
        self.accounts = AccountRegistry(self.instruments, self.clock.now, ids=IdFactory(seed=config.seed + 1))
        self.engine = MatchingEngine(
            self.accounts, instruments=self.instruments, clock=self.clock.now, ids=IdFactory(seed=config.seed)
        )
        self.secrets: dict[str, str] = {}
        for acc in config.accounts:
            self.accounts.open(acc.api_key, acc.balance)
            self.secrets[acc.api_key] = acc.api_secret
        self.market: MarketSource | None = None
        self._history_pending = False
        self.private = PrivateHub()
        self.listeners: list[PublicListener] = []
        self.tick_hooks: list[Callable[[int], None]] = []
        self.klines = {s: KlineBook(s) for s in self.instruments}
        self.recent_trades: dict[str, deque[PublicTrade]] = {
            s: deque(maxlen=RECENT_TRADES_KEPT) for s in self.instruments
        }
        self.orders: dict[str, OrderedDict[str, Order]] = {k: OrderedDict() for k in self.secrets}
        self.executions: dict[str, deque[Execution]] = {
            k: deque(maxlen=EXECUTIONS_KEPT) for k in self.secrets
        }
        now = self.clock.now()
        self.next_funding = {s: self._funding_after(s, now) for s in self.instruments}
        self._driver: asyncio.Task[None] | None = None
        self.stepped_to: int | None = None  # exchange time of the last step
        self._slow_since: float | None = None  # wall time the achieved speed fell below the request
        self._last_slow_warning = -float("inf")

    # -- wiring --------------------------------------------------------------------------------------

    def attach_market(self, market: MarketSource) -> None:
        """Use ``market`` as the source of simulated order flow (advanced by the driver)."""
        self.market = market
        self._history_pending = True

    def account(self, api_key: str) -> Account:
        """The account of a configured API key."""
        account = self.accounts.get(api_key)
        if account is None:
            raise KeyError(api_key)
        return account

    def funding_interval_ms(self, symbol: str) -> int:
        """The funding interval of ``symbol`` in ms of exchange time."""
        return self.instruments[symbol].funding_interval_minutes * 60_000

    def funding_rate(self, symbol: str) -> Decimal:
        """The rate the next settlement uses: the market's if it offers one, else the configured default."""
        source = getattr(self.market, "funding_rate", None)
        rate = Decimal(source(symbol)) if callable(source) else self.config.default_funding_rate
        spec = self.instruments[symbol]
        return min(max(rate, spec.lower_funding_rate), spec.upper_funding_rate)

    def _funding_after(self, symbol: str, now: int) -> int:
        # Settlements fall on multiples of the interval since the epoch (00:00, 08:00, 16:00 UTC for 8 h).
        interval = self.funding_interval_ms(symbol)
        return (now // interval + 1) * interval

    # -- commands (REST) -----------------------------------------------------------------------------

    def create_order(self, api_key: str, req: OrderRequest) -> tuple[EngineResult, list[PrivateMessage]]:
        """``/v5/order/create``; raises ``ExchangeError`` on refusal. Messages are not yet published."""
        result = self.engine.submit(api_key, req)
        return result, self._absorb(result, api_key, (req.symbol,))

    def amend_order(
        self, api_key: str, symbol: str, **kwargs: Any
    ) -> tuple[EngineResult, list[PrivateMessage]]:
        """``/v5/order/amend`` (keyword arguments as :meth:`MatchingEngine.amend`)."""
        result = self.engine.amend(api_key, symbol, **kwargs)
        return result, self._absorb(result, api_key, (symbol,))

    def cancel_order(
        self, api_key: str, symbol: str, **kwargs: Any
    ) -> tuple[EngineResult, list[PrivateMessage]]:
        """``/v5/order/cancel``."""
        result = self.engine.cancel(api_key, symbol, **kwargs)
        return result, self._absorb(result, api_key, (symbol,))

    def cancel_all(
        self,
        api_key: str,
        symbol: str | None,
        order_filter: str | None = None,
        stop_order_type: str | None = None,
    ) -> tuple[EngineResult, list[PrivateMessage]]:
        """``/v5/order/cancel-all`` for one symbol, or every symbol when ``symbol`` is ``None``."""
        result = self.engine.cancel_all(api_key, symbol, order_filter, stop_order_type)
        symbols = (symbol,) if symbol else tuple(dict.fromkeys(o.symbol for o in result.order_updates))
        return result, self._absorb(result, api_key, symbols)

    def trading_stop(
        self, api_key: str, req: TradingStopRequest
    ) -> tuple[EngineResult, list[PrivateMessage]]:
        """``/v5/position/trading-stop``: ``order`` messages of the TP/SL orders, then ``position``."""
        result = self.engine.conditional.trading_stop(api_key, req)
        return result, self._absorb(result, api_key, (req.symbol,))

    def set_mark_price(self, symbol: str, price: Decimal) -> None:
        """Set a mark price (admin API) and publish what the move triggers."""
        self.engine.set_mark_price(symbol, price)
        self.private.publish(self._absorb(self.engine.poll_triggers(), None, ()))

    def set_leverage(self, api_key: str, symbol: str, buy: Decimal, sell: Decimal) -> list[PrivateMessage]:
        """``/v5/position/set-leverage``; a change produces a ``position`` message."""
        account = self.account(api_key)
        account.set_leverage(symbol, buy, sell)
        return [self._position_message(account, symbol)]

    # -- market, funding, driver ---------------------------------------------------------------------

    def step(self, now: int | None = None) -> None:
        """Advance the market to ``now``, publish its effects, close candles, settle due funding."""
        now = self.clock.now() if now is None else now
        self.stepped_to = now
        if self.market is not None:
            if self._history_pending:
                self._history_pending = False
                self._load_history(self.market, now)
            for result in self.market.advance(now):
                self.private.publish(self._absorb(result, None, ()))
            # Trades fire what they cross within their own command; mark moves are caught up here.
            triggered = self.engine.poll_triggers()
            if triggered.order_updates:
                self.private.publish(self._absorb(triggered, None, ()))
        for symbol, book in self.klines.items():
            closed = book.roll(now)
            if closed:
                for listener in self.listeners:
                    listener.on_candles(symbol, closed)
        for symbol in self.instruments:
            while now >= self.next_funding[symbol]:
                self.private.publish(self.settle_funding(symbol))
                self.next_funding[symbol] += self.funding_interval_ms(symbol)
        for hook in self.tick_hooks:
            hook(now)

    def _load_history(self, market: MarketSource, now: int) -> None:
        # Before the market's first advance: the live candles then follow on from the history.
        source = getattr(market, "kline_history", None)
        if not callable(source):
            return
        for symbol, candles in source(now).items():
            if symbol in self.klines and not self.recent_trades[symbol]:
                self.klines[symbol].load_history(candles)

    def settle_funding(self, symbol: str) -> list[PrivateMessage]:
        """Settle one funding interval of ``symbol`` now: ``execution`` (Funding) → ``position`` → ``wallet``."""
        mark = self.engine.reference_price(symbol)
        if mark is None:
            log.info("funding skipped: no mark price yet", symbol=symbol)
            return []
        records = self.engine.settle_funding(symbol, self.funding_rate(symbol), mark)
        spec = self.instruments[symbol]
        out: list[PrivateMessage] = []
        for ex in records:
            self.executions[ex.owner].append(ex)
            account = self.account(ex.owner)
            out.append(PrivateMessage(ex.owner, "execution", [wire.execution_object(spec, ex, stream=True)]))
            out.append(self._position_message(account, symbol))
            out.append(PrivateMessage(ex.owner, "wallet", [wire.wallet_object(account)]))
        return out

    async def start(self) -> None:
        """Start the driver task (idempotent); from then on exchange time is the simulated time."""
        if self._driver is None:
            self.step(self.clock.begin_pacing())
            log.info(
                "exchange clock started",
                requested_speed=self.clock.speed,
                exchange_ms=self.clock.now(),
                step_ms=self.config.driver_interval_ms,
            )
            self._driver = asyncio.create_task(self._drive(), name="exchange-sim-driver")

    async def stop(self) -> None:
        """Stop the driver task."""
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None

    async def _drive(self) -> None:
        """Step the venue every ``driver_interval_ms`` of exchange time, as fast as requested at most.

        Each step is one exchange-time slice: market, candles, funding, then the tick hooks (book
        pushes on their exchange-time cadence). When the requested time is ahead, steps run back to back,
        yielding to the event loop every ``DRIVER_BURST_S`` of wall time; when the process cannot keep
        up, the clock slips (see :mod:`exchange_sim.clock`) instead of any step being skipped or merged.
        """
        clock = self.clock
        step_ms = self.config.driver_interval_ms
        next_report = time.monotonic() + SPEED_REPORT_S
        while True:
            due = clock.now() + step_ms
            wait = clock.wall_seconds_until(due)
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            burst_end = time.monotonic() + DRIVER_BURST_S
            while True:
                clock.pace(due)
                try:
                    self.step(due)
                except Exception:
                    # One bad step must not stop the exchange: log it and keep the market moving.
                    log.exception("exchange driver step failed", exchange_ms=due)
                due += step_ms
                if due > clock.requested() or time.monotonic() >= burst_end:
                    break
            clock.slip()
            clock.sample()
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + SPEED_REPORT_S
                self._report_speed()
            await asyncio.sleep(0)

    def speed_status(self) -> dict[str, Any]:
        """The clock's requested and achieved speed, exchange time, lag behind the request and slip."""
        achieved = self.clock.achieved_speed()
        return {
            "exchange_ms": self.clock.now(),
            "requested_speed": self.clock.speed,
            "achieved_speed": None if achieved is None else round(achieved, 3),
            "lag_ms": self.clock.lag_ms(),
            "slipped_ms": self.clock.slipped_ms,
            "paced": self.clock.paced,
        }

    def _report_speed(self) -> None:
        """Warn (at most every ``SLOW_WARN_EVERY_S``) while the clock runs below the requested speed."""
        achieved = self.clock.achieved_speed()
        if achieved is None:
            return
        wall = time.monotonic()
        if achieved < SLOW_RATIO * self.clock.speed:
            if self._slow_since is None:
                self._slow_since = wall
            if wall - self._last_slow_warning >= SLOW_WARN_EVERY_S:
                self._last_slow_warning = wall
                log.warning(
                    "exchange clock slower than requested: topics keep their exchange-time cadence, "
                    "the clock slows down",
                    requested_speed=self.clock.speed,
                    achieved_speed=round(achieved, 2),
                    slipped_ms=self.clock.slipped_ms,
                    slow_for_s=round(wall - self._slow_since, 1),
                )
        elif self._slow_since is not None:
            log.info(
                "exchange clock back at the requested speed",
                requested_speed=self.clock.speed,
                achieved_speed=round(achieved, 2),
                slow_for_s=round(wall - self._slow_since, 1),
            )
            self._slow_since = None

    # -- bookkeeping ---------------------------------------------------------------------------------

    def _absorb(
        self, result: EngineResult, commander: str | None, command_symbols: tuple[str, ...]
    ) -> list[PrivateMessage]:
        """Record ``result`` and build the private messages it causes, per account in §6.8 order."""
        if result.trades:
            by_symbol: dict[str, list[PublicTrade]] = {}
            for trade in result.trades:
                by_symbol.setdefault(trade.symbol, []).append(trade)
            for symbol, trades in by_symbol.items():
                self.recent_trades[symbol].extend(trades)
                closed = self.klines[symbol].add_trades(trades)
                for listener in self.listeners:
                    if closed:
                        listener.on_candles(symbol, closed)
                    listener.on_trades(symbol, trades)
        touched: dict[str, None] = {}
        if commander is not None:
            touched[commander] = None
        execs: dict[str, list[Execution]] = {}
        for ex in result.executions:
            if ex.owner in self.secrets:
                execs.setdefault(ex.owner, []).append(ex)
                touched[ex.owner] = None
                self.executions[ex.owner].append(ex)
        orders: dict[str, list[Order]] = {}
        for order in result.order_updates:
            if order.owner in self.secrets:
                orders.setdefault(order.owner, []).append(order)
                touched[order.owner] = None
                store = self.orders[order.owner]
                store[order.order_id] = order
                store.move_to_end(order.order_id)
                while len(store) > ORDERS_KEPT:
                    store.popitem(last=False)
        out: list[PrivateMessage] = []
        for key in touched:
            account = self.account(key)
            mine_e, mine_o = execs.get(key, []), orders.get(key, [])
            if mine_e:
                out.append(
                    PrivateMessage(
                        key,
                        "execution",
                        [wire.execution_object(self.instruments[e.symbol], e, stream=True) for e in mine_e],
                    )
                )
            if mine_o:
                out.append(
                    PrivateMessage(
                        key,
                        "order",
                        [wire.order_object(self.instruments[o.symbol], o, stream=True) for o in mine_o],
                    )
                )
            symbols = dict.fromkeys([*(e.symbol for e in mine_e), *(o.symbol for o in mine_o)])
            if key == commander:
                symbols.update(dict.fromkeys(command_symbols))
            for symbol in symbols:
                out.append(self._position_message(account, symbol))
            if mine_e:
                out.append(PrivateMessage(key, "wallet", [wire.wallet_object(account)]))
        return out

    def _position_message(self, account: Account, symbol: str) -> PrivateMessage:
        spec = self.instruments[symbol]
        pos = account.position(symbol)
        data = wire.position_object(spec, account, pos, self.accounts.marks.get(symbol), stream=True)
        return PrivateMessage(account.api_key, "position", [data])
