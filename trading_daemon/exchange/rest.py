"""Typed Bybit v5 REST endpoints (linear perpetuals, unified account, one-way mode).

Each method builds the documented parameters, sends them through `BybitHttpClient` and returns
`schemas` records or `records.Bybit*` reports. Order creation is idempotent by `orderLinkId`
(§8.5): after an ambiguous failure the client looks the order up before resending with the same id,
and a "duplicate orderLinkId" reply to a resend means the first attempt got through.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from schemas.enums import OrderType, Side, TimeInForce
from schemas.market import BookSnapshot, Candle, PublicTrade
from schemas.trading import Fill
from trading_daemon.errors import classify
from trading_daemon.exchange.constants import (
    ACCOUNT_TYPE,
    CATEGORY,
    ORDER_LINK_ID_RE,
    POSITION_IDX_ONE_WAY,
    SETTLE_COIN,
    BybitEndpoint,
    BybitEndpoints,
    BybitRetCode,
)
from trading_daemon.exchange.errors import (
    BybitDuplicateOrderLinkId,
    BybitError,
    BybitOrderRejected,
    BybitProtocolError,
)
from trading_daemon.exchange.http import BybitHttpClient, Params
from trading_daemon.exchange.messages import (
    BybitCancelAllResult,
    BybitExecutionList,
    BybitFeeRateList,
    BybitInstrumentsResult,
    BybitKlineResult,
    BybitOrderbookResult,
    BybitOrderIds,
    BybitOrderList,
    BybitPositionList,
    BybitRecentTradesResult,
    BybitServerTime,
    BybitTickersResult,
    BybitWalletResult,
)
from trading_daemon.exchange.parsing import (
    parse_fee_rate,
    parse_fills,
    parse_instrument,
    parse_klines,
    parse_order,
    parse_orderbook,
    parse_position,
    parse_recent_trades,
    parse_ticker,
    parse_wallet,
)
from trading_daemon.exchange.records import (
    BybitFeeRates,
    BybitInstrumentInfo,
    BybitOrderAck,
    BybitOrderReport,
    BybitPositionReport,
    BybitTickerInfo,
    BybitWalletBalance,
)

S = TypeVar("S", bound=msgspec.Struct)
MAX_PAGES = 50  # a guard against a cursor that never ends

_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def _decode(raw: msgspec.Raw, kind: type[S]) -> S:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        result: S = decoder.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError included
        # A good envelope (retCode 0) whose result is not what the protocol documents: the venue's own
        # answer, not a bad moment, so retrying cannot help (fatal, like a 10017).
        raise BybitProtocolError(
            f"the result does not have the shape of {kind.__name__}: {exc}", ret_code=0, venue_answered=True
        ) from exc
    return result


def _ack(ids: BybitOrderIds) -> BybitOrderAck:
    return BybitOrderAck(order_id=ids.orderId, order_link_id=ids.orderLinkId)


def validate_order_link_id(order_link_id: str) -> str:
    """Check an orderLinkId against §8.5 (≤ 36 characters of `[A-Za-z0-9_-]`)."""
    if not ORDER_LINK_ID_RE.match(order_link_id):
        raise ValueError(f"orderLinkId {order_link_id!r} must be 1-36 characters of [A-Za-z0-9_-]")
    return order_link_id


class BybitRestClient:
    """The Bybit REST API as typed methods. Create with a `BybitHttpClient`."""

    def __init__(self, http: BybitHttpClient) -> None:
        self.http = http

    async def close(self) -> None:
        """Close the transport."""
        await self.http.close()

    async def _get(self, endpoint: BybitEndpoint, params: Params, kind: type[S]) -> S:
        return _decode((await self.http.request(endpoint, params)).result, kind)

    async def _pages(
        self, endpoint: BybitEndpoint, params: dict[str, object], kind: type[S], max_items: int | None
    ) -> list[Any]:
        """Follow `nextPageCursor` (passed back verbatim, §1.6) and concatenate `list`."""
        items: list[Any] = []
        for _ in range(MAX_PAGES):
            page = await self._get(endpoint, params, kind)
            items.extend(page.list)  # type: ignore[attr-defined]
            cursor: str = getattr(page, "nextPageCursor", "")
            if not cursor or (max_items is not None and len(items) >= max_items):
                break
            params = {**params, "cursor": cursor}
        return items if max_items is None else items[:max_items]

    # --- market data ------------------------------------------------------------------------------

    async def get_server_time(self) -> int:
        """Server time in ms (`/v5/market/time`)."""
        response = await self.http.request(BybitEndpoints.SERVER_TIME)
        _decode(response.result, BybitServerTime)  # validates the shape
        return response.time_ms

    async def sync_time(self) -> int:
        """Measure the clock offset used for signing; returns it in ms."""
        return await self.http.sync_time()

    async def get_instruments(self, symbol: str | None = None) -> list[BybitInstrumentInfo]:
        """Instrument rules (all trading linear contracts, or one symbol), every page."""
        params: dict[str, object] = {"category": CATEGORY, "symbol": symbol, "limit": 1000}
        rows = await self._pages(BybitEndpoints.INSTRUMENTS, params, BybitInstrumentsResult, None)
        return [parse_instrument(r) for r in rows]

    async def get_orderbook(self, symbol: str, limit: int = 50) -> BookSnapshot:
        """The REST book (its `u` matches the 1000-level stream, §3.3)."""
        params = {"category": CATEGORY, "symbol": symbol, "limit": limit}
        return parse_orderbook(await self._get(BybitEndpoints.ORDERBOOK, params, BybitOrderbookResult))

    async def get_klines(
        self,
        symbol: str,
        interval: str = "1",
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 200,
    ) -> list[Candle]:
        """Candles oldest first; a candle still open at the reply's time has `confirmed=False`."""
        params = {
            "category": CATEGORY,
            "symbol": symbol,
            "interval": interval,
            "start": start_ms,
            "end": end_ms,
            "limit": limit,
        }
        response = await self.http.request(BybitEndpoints.KLINE, params)
        raw = _decode(response.result, BybitKlineResult)
        if not raw.symbol:
            raw = msgspec.structs.replace(raw, symbol=symbol)
        return parse_klines(raw, interval, now_ms=response.time_ms)

    async def get_tickers(self, symbol: str | None = None) -> list[BybitTickerInfo]:
        """Tickers of one or all linear symbols."""
        params = {"category": CATEGORY, "symbol": symbol}
        return [
            parse_ticker(t)
            for t in (await self._get(BybitEndpoints.TICKERS, params, BybitTickersResult)).list
        ]

    async def get_recent_trades(self, symbol: str, limit: int = 500) -> list[PublicTrade]:
        """Recent public trades, oldest first."""
        params = {"category": CATEGORY, "symbol": symbol, "limit": limit}
        return parse_recent_trades(
            (await self._get(BybitEndpoints.RECENT_TRADES, params, BybitRecentTradesResult)).list
        )

    # --- orders -----------------------------------------------------------------------------------

    async def place_order(
        self,
        *,
        symbol: str,
        side: Side,
        order_type: OrderType,
        qty: Decimal,
        price: Decimal | None = None,
        time_in_force: TimeInForce | None = None,
        order_link_id: str | None = None,
        reduce_only: bool | None = None,
        close_on_trigger: bool | None = None,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
    ) -> BybitOrderAck:
        """Place an order. With `order_link_id` the call is retried safely (§8.5); without one it is
        sent exactly once, since a blind resend could open a second position."""
        if order_type is OrderType.LIMIT and price is None:
            raise ValueError("a Limit order needs a price")
        body: dict[str, object] = {
            "category": CATEGORY,
            "symbol": symbol,
            "side": side,
            "orderType": order_type,
            "qty": qty,
            "price": price if order_type is OrderType.LIMIT else None,
            "timeInForce": time_in_force,
            "positionIdx": POSITION_IDX_ONE_WAY,
            "orderLinkId": validate_order_link_id(order_link_id) if order_link_id else None,
            "reduceOnly": reduce_only,
            "closeOnTrigger": close_on_trigger,
            "takeProfit": take_profit,
            "stopLoss": stop_loss,
        }
        if not order_link_id:
            response = await self.http.request(BybitEndpoints.ORDER_CREATE, body, retry_safe=False)
            return _ack(_decode(response.result, BybitOrderIds))
        link_id = order_link_id

        async def attempt(number: int, last: BaseException | None) -> BybitOrderAck:
            # After a failure whose outcome is unknown, an earlier request may have placed the order:
            # reconcile (look it up) before sending it again.
            ambiguous = last is not None and classify(last).outcome_unknown
            if ambiguous:
                found = await self.find_order(symbol, order_link_id=link_id)
                if found is not None:
                    return BybitOrderAck(order_id=found.order_id, order_link_id=found.order_link_id)
            try:
                response = await self.http.send(BybitEndpoints.ORDER_CREATE, body)
            except BybitDuplicateOrderLinkId:
                if number == 1:
                    raise  # a genuine reuse of the id: the caller's bug
                found = await self.find_order(symbol, order_link_id=link_id)
                if found is None:
                    raise
                return BybitOrderAck(order_id=found.order_id, order_link_id=found.order_link_id)
            return _ack(_decode(response.result, BybitOrderIds))

        return await self.http.with_retries(attempt, retry_safe=True, what=BybitEndpoints.ORDER_CREATE.path)

    async def amend_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        order_link_id: str | None = None,
        qty: Decimal | None = None,
        price: Decimal | None = None,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
    ) -> BybitOrderAck:
        """Amend a resting order; fields left None are not changed. Send one id only (§8.5)."""
        body = {
            "category": CATEGORY,
            "symbol": symbol,
            **_one_id(order_id, order_link_id),
            "qty": qty,
            "price": price,
            "takeProfit": take_profit,
            "stopLoss": stop_loss,
        }
        return _ack(
            _decode((await self.http.request(BybitEndpoints.ORDER_AMEND, body)).result, BybitOrderIds)
        )

    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, order_link_id: str | None = None
    ) -> BybitOrderAck:
        """Cancel one order. `BybitOrderNotFound` means "already terminal or unknown": reconcile."""
        body = {"category": CATEGORY, "symbol": symbol, **_one_id(order_id, order_link_id)}
        return _ack(
            _decode((await self.http.request(BybitEndpoints.ORDER_CANCEL, body)).result, BybitOrderIds)
        )

    async def cancel_all_orders(self, symbol: str | None = None) -> list[BybitOrderAck]:
        """Cancel every open order of `symbol` (or of every USDT contract)."""
        body = {"category": CATEGORY, "symbol": symbol, "settleCoin": None if symbol else SETTLE_COIN}
        response = await self.http.request(BybitEndpoints.ORDER_CANCEL_ALL, body)
        result = _decode(response.result, BybitCancelAllResult)
        return [_ack(ids) for ids in result.list]

    async def get_open_orders(
        self,
        symbol: str | None = None,
        *,
        order_id: str | None = None,
        order_link_id: str | None = None,
        open_only: int = 0,
        max_items: int | None = None,
    ) -> list[BybitOrderReport]:
        """`/v5/order/realtime`: open orders, or (by id, or `open_only=1`) recently closed ones."""
        params: dict[str, object] = {
            "category": CATEGORY,
            "symbol": symbol,
            "settleCoin": None if symbol else SETTLE_COIN,
            "orderId": order_id,
            "orderLinkId": order_link_id,
            "openOnly": open_only or None,
            "limit": 50,
        }
        rows = await self._pages(BybitEndpoints.OPEN_ORDERS, params, BybitOrderList, max_items)
        return [parse_order(r) for r in rows]

    async def get_order_history(
        self,
        symbol: str | None = None,
        *,
        order_id: str | None = None,
        order_link_id: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        max_items: int | None = 200,
    ) -> list[BybitOrderReport]:
        """`/v5/order/history`: closed orders (newest first, as Bybit sends them)."""
        params: dict[str, object] = {
            "category": CATEGORY,
            "symbol": symbol,
            "orderId": order_id,
            "orderLinkId": order_link_id,
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": 50,
        }
        rows = await self._pages(BybitEndpoints.ORDER_HISTORY, params, BybitOrderList, max_items)
        return [parse_order(r) for r in rows]

    async def find_order(
        self, symbol: str, *, order_id: str | None = None, order_link_id: str | None = None
    ) -> BybitOrderReport | None:
        """One order by id, open or closed: `/v5/order/realtime`, then `/v5/order/history` (§4.5)."""
        ids = _one_id(order_id, order_link_id)
        for lookup in (self.get_open_orders, self.get_order_history):
            found = await lookup(symbol, order_id=ids.get("orderId"), order_link_id=ids.get("orderLinkId"))
            if found:
                return found[0]
        return None

    # --- account ----------------------------------------------------------------------------------

    async def get_executions(
        self,
        symbol: str | None = None,
        *,
        order_id: str | None = None,
        order_link_id: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        max_items: int | None = 1000,
    ) -> list[Fill]:
        """Fills (`/v5/execution/list`), oldest first."""
        params: dict[str, object] = {
            "category": CATEGORY,
            "symbol": symbol,
            "orderId": order_id,
            "orderLinkId": order_link_id,
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": 100,
        }
        rows = await self._pages(BybitEndpoints.EXECUTIONS, params, BybitExecutionList, max_items)
        return parse_fills(rows)

    async def get_positions(self, symbol: str | None = None) -> list[BybitPositionReport]:
        """With `symbol`: that position, even flat. Without: every non-flat USDT position."""
        params: dict[str, object] = {
            "category": CATEGORY,
            "symbol": symbol,
            "settleCoin": None if symbol else SETTLE_COIN,
            "limit": 200,
        }
        rows = await self._pages(BybitEndpoints.POSITIONS, params, BybitPositionList, None)
        return [parse_position(r) for r in rows]

    async def set_leverage(self, symbol: str, leverage: Decimal) -> bool:
        """Set buy and sell leverage (equal in one-way mode). False if it was already in force."""
        body = {"category": CATEGORY, "symbol": symbol, "buyLeverage": leverage, "sellLeverage": leverage}
        try:
            await self.http.request(BybitEndpoints.SET_LEVERAGE, body)
        except BybitOrderRejected as exc:
            if (
                exc.ret_code == BybitRetCode.LEVERAGE_NOT_MODIFIED
            ):  # "leverage not modified" is success (§4.11, §8.5)
                return False
            raise
        return True

    async def get_wallet_balance(self, coin: str | None = SETTLE_COIN) -> BybitWalletBalance:
        """The unified account's balance (with `coin`, that coin's row even when zero)."""
        params = {"accountType": ACCOUNT_TYPE, "coin": coin}
        result = await self._get(BybitEndpoints.WALLET_BALANCE, params, BybitWalletResult)
        if not result.list:
            raise BybitError(
                "wallet-balance returned no account", endpoint=BybitEndpoints.WALLET_BALANCE.path
            )
        return parse_wallet(result.list[0])

    async def get_fee_rates(self, symbol: str | None = None) -> list[BybitFeeRates]:
        """The account's maker/taker rates (call once at start-up, limit 5/s)."""
        params = {"category": CATEGORY, "symbol": symbol}
        return [
            parse_fee_rate(r)
            for r in (await self._get(BybitEndpoints.FEE_RATE, params, BybitFeeRateList)).list
        ]


def _one_id(order_id: str | None, order_link_id: str | None) -> dict[str, str]:
    if order_id:
        return {"orderId": order_id}
    if order_link_id:
        return {"orderLinkId": order_link_id}
    raise ValueError("give order_id or order_link_id")
