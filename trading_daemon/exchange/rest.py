"""Typed Bybit v5 REST endpoints (linear perpetuals, unified account, one-way mode).

Each method builds the documented parameters, sends them through `BybitHttpClient` and returns
`schemas` records or `records.Bybit*` reports. Order creation is idempotent by `orderLinkId`
(§8.5): after an ambiguous failure the client waits until the venue can no longer accept the lost
request (its timestamp plus the receive window), looks the order up, and resends with the same id only if
it is absent; a "duplicate orderLinkId" reply to a resend means the first attempt got through.

Anything that fails raises a `trading_daemon.errors` type (`exchange.errors`): a query never answers an
empty list for a failure, a page that cannot be read is a `BybitProtocolError`, and list methods follow
every page (a cursor that never ends is an error too, not a silent cut).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec

from schemas.enums import OrderType, Side, TimeInForce
from schemas.market import BookSnapshot, Candle, PublicTrade
from trading_daemon.errors import classify
from trading_daemon.exchange.constants import (
    CATEGORY,
    ORDER_LINK_ID_RE,
    POSITION_IDX_ONE_WAY,
    SETTLE_COIN,
    BybitEndpoints,
)
from trading_daemon.exchange.errors import BybitDuplicateOrderLinkId, BybitError
from trading_daemon.exchange.messages import (
    BybitCancelAllResult,
    BybitInstrumentsResult,
    BybitKlineResult,
    BybitOrderbookResult,
    BybitOrderIds,
    BybitOrderList,
    BybitRecentTradesResult,
    BybitServerTime,
    BybitTickersResult,
)
from trading_daemon.exchange.parsing import (
    parse_instrument,
    parse_klines,
    parse_order,
    parse_orderbook,
    parse_recent_trades,
    parse_ticker,
)
from trading_daemon.exchange.records import (
    BybitInstrumentInfo,
    BybitOrderAck,
    BybitOrderFilter,
    BybitOrderReport,
    BybitTickerInfo,
    BybitTpslMode,
    BybitTriggerBy,
    BybitTriggerDirection,
)
from trading_daemon.exchange.rest_account import BybitAccountEndpoints
from trading_daemon.exchange.rest_base import decode_result as _decode
from trading_daemon.exchange.rest_base import parse_rows, readable

# After an ambiguous create the lookup waits until the request's timestamp + recv window + this margin
# (the client's estimate of the exchange clock may be off by part of a round trip), §8.5.
RECV_WINDOW_MARGIN_MS = 1_000


def _ack(ids: BybitOrderIds) -> BybitOrderAck:
    return BybitOrderAck(order_id=ids.orderId, order_link_id=ids.orderLinkId)


def validate_order_link_id(order_link_id: str) -> str:
    """Check an orderLinkId against §8.5 (≤ 36 characters of `[A-Za-z0-9_-]`)."""
    if not ORDER_LINK_ID_RE.match(order_link_id):
        raise ValueError(f"orderLinkId {order_link_id!r} must be 1-36 characters of [A-Za-z0-9_-]")
    return order_link_id


class BybitRestClient(BybitAccountEndpoints):
    """The Bybit REST API as typed methods (account endpoints in `rest_account`). Create with a
    `BybitHttpClient`."""

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
        return parse_rows(parse_instrument, rows, BybitEndpoints.INSTRUMENTS)

    async def get_orderbook(self, symbol: str, limit: int = 50) -> BookSnapshot:
        """The REST book (its `u` matches the 1000-level stream, §3.3)."""
        params = {"category": CATEGORY, "symbol": symbol, "limit": limit}
        raw = await self._get(BybitEndpoints.ORDERBOOK, params, BybitOrderbookResult)
        with readable(BybitEndpoints.ORDERBOOK):
            return parse_orderbook(raw)

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
        with readable(BybitEndpoints.KLINE):
            return parse_klines(raw, interval, now_ms=response.time_ms)

    async def get_tickers(self, symbol: str | None = None) -> list[BybitTickerInfo]:
        """Tickers of one or all linear symbols."""
        params = {"category": CATEGORY, "symbol": symbol}
        rows = (await self._get(BybitEndpoints.TICKERS, params, BybitTickersResult)).list
        return parse_rows(parse_ticker, rows, BybitEndpoints.TICKERS)

    async def get_recent_trades(self, symbol: str, limit: int = 500) -> list[PublicTrade]:
        """Recent public trades, oldest first."""
        params = {"category": CATEGORY, "symbol": symbol, "limit": limit}
        rows = (await self._get(BybitEndpoints.RECENT_TRADES, params, BybitRecentTradesResult)).list
        with readable(BybitEndpoints.RECENT_TRADES):
            return parse_recent_trades(rows)

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
        resend_after_unknown: bool = True,
        tp_trigger_by: BybitTriggerBy | None = None,
        sl_trigger_by: BybitTriggerBy | None = None,
        tpsl_mode: BybitTpslMode | None = None,
        tp_order_type: OrderType | None = None,
        sl_order_type: OrderType | None = None,
        tp_limit_price: Decimal | None = None,
        sl_limit_price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        trigger_direction: BybitTriggerDirection | None = None,
        trigger_by: BybitTriggerBy | None = None,
    ) -> BybitOrderAck:
        """Place an order. With `order_link_id` the call is retried safely (§8.5); without one it is
        sent exactly once, since a blind resend could open a second position.

        `take_profit`/`stop_loss` (with their `tp_*`/`sl_*` options) attach a TP/SL that becomes the
        position's when the order fills (§4.15); `trigger_price` with `trigger_direction` makes it a
        conditional order, `Untriggered` until the `trigger_by` price crosses (§4.17).

        After an unknown outcome (timeout, 5xx, dropped connection) the order is resent only when the
        venue, asked by `orderLinkId` after the request's receive window has passed, does not have it.
        `resend_after_unknown=False` leaves an unknown outcome to the caller instead (the error carries
        `request_ms`; `find_order_after_recv_window` is the lookup). Refusals before processing (10002,
        10006) are resent at once."""
        if order_type is OrderType.LIMIT and price is None:
            raise ValueError("a Limit order needs a price")
        if (trigger_price is None) != (trigger_direction is None):
            raise ValueError("a conditional order needs both trigger_price and trigger_direction")
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
            "tpTriggerBy": tp_trigger_by,
            "slTriggerBy": sl_trigger_by,
            "tpslMode": tpsl_mode,
            "tpOrderType": tp_order_type,
            "slOrderType": sl_order_type,
            "tpLimitPrice": tp_limit_price,
            "slLimitPrice": sl_limit_price,
            "triggerPrice": trigger_price,
            "triggerDirection": int(trigger_direction) if trigger_direction is not None else None,
            "triggerBy": trigger_by,
        }
        if not order_link_id or not resend_after_unknown:
            response = await self.http.request(BybitEndpoints.ORDER_CREATE, body, retry_safe=False)
            return _ack(_decode(response.result, BybitOrderIds))
        link_id = order_link_id
        unresolved_ms: int | None = None  # timestamp of the last create whose outcome is unknown

        async def attempt(number: int, last: BaseException | None) -> BybitOrderAck:
            nonlocal unresolved_ms
            # An earlier request may still be accepted until its receive window has passed: only a
            # lookup after that proves it absent (the ambiguous-outcome rule, §8.5).
            if unresolved_ms is not None:
                found = await self.find_order_after_recv_window(symbol, link_id, unresolved_ms)
                if found is not None:
                    return BybitOrderAck(order_id=found.order_id, order_link_id=found.order_link_id)
                unresolved_ms = None
            try:
                response = await self.http.send(BybitEndpoints.ORDER_CREATE, body)
            except BybitDuplicateOrderLinkId:
                if number == 1:
                    raise  # a genuine reuse of the id: the caller's bug
                found = await self.find_order(symbol, order_link_id=link_id)
                if found is None:
                    raise
                return BybitOrderAck(order_id=found.order_id, order_link_id=found.order_link_id)
            except BybitError as exc:
                if classify(exc).outcome_unknown:
                    unresolved_ms = exc.request_ms if exc.request_ms is not None else self.http.now_ms()
                raise
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
        tp_trigger_by: BybitTriggerBy | None = None,
        sl_trigger_by: BybitTriggerBy | None = None,
        tp_limit_price: Decimal | None = None,
        sl_limit_price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        trigger_by: BybitTriggerBy | None = None,
    ) -> BybitOrderAck:
        """Amend an open order; fields left None are not changed, a `take_profit`/`stop_loss` of 0 removes
        it. An `Untriggered` order's trigger can be amended, and a TP/SL order's trigger is its
        position's new take-profit/stop-loss. Send one id only (§8.5)."""
        body = {
            "category": CATEGORY,
            "symbol": symbol,
            **_one_id(order_id, order_link_id),
            "qty": qty,
            "price": price,
            "takeProfit": take_profit,
            "stopLoss": stop_loss,
            "tpTriggerBy": tp_trigger_by,
            "slTriggerBy": sl_trigger_by,
            "tpLimitPrice": tp_limit_price,
            "slLimitPrice": sl_limit_price,
            "triggerPrice": trigger_price,
            "triggerBy": trigger_by,
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

    async def cancel_all_orders(
        self,
        symbol: str | None = None,
        *,
        order_filter: BybitOrderFilter | None = None,
        stop_conditional_only: bool = False,
    ) -> list[BybitOrderAck]:
        """Cancel every open order of `symbol` (or of every USDT contract).

        Without `order_filter` Bybit cancels every kind, the positions' TP/SL included: a kill switch
        that must leave the protection in place passes `BybitOrderFilter.ORDER`. `STOP_ORDER` cancels
        conditional and TP/SL orders; with `stop_conditional_only` only the plain conditional ones
        (`stopOrderType` Stop).
        """
        if stop_conditional_only and order_filter is not BybitOrderFilter.STOP_ORDER:
            raise ValueError("stop_conditional_only needs order_filter STOP_ORDER")
        body = {
            "category": CATEGORY,
            "symbol": symbol,
            "settleCoin": None if symbol else SETTLE_COIN,
            "orderFilter": order_filter,
            "stopOrderType": "Stop" if stop_conditional_only else None,
        }
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
        order_filter: BybitOrderFilter | None = None,
    ) -> list[BybitOrderReport]:
        """`/v5/order/realtime`: open orders (`Untriggered` conditional and TP/SL orders included), or (by
        id, or `open_only=1`) recently closed ones; `order_filter` narrows the kind (§4.5)."""
        params: dict[str, object] = {
            "category": CATEGORY,
            "symbol": symbol,
            "settleCoin": None if symbol else SETTLE_COIN,
            "orderId": order_id,
            "orderLinkId": order_link_id,
            "openOnly": open_only or None,
            "orderFilter": order_filter,
            "limit": 50,
        }
        rows = await self._pages(BybitEndpoints.OPEN_ORDERS, params, BybitOrderList, max_items)
        return parse_rows(parse_order, rows, BybitEndpoints.OPEN_ORDERS)

    async def get_order_history(
        self,
        symbol: str | None = None,
        *,
        order_id: str | None = None,
        order_link_id: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        max_items: int | None = 200,
        order_filter: BybitOrderFilter | None = None,
        order_status: str | None = None,
    ) -> list[BybitOrderReport]:
        """`/v5/order/history`: closed orders (newest first, as Bybit sends them), at most 7 days apart.

        Bybit keeps orders with fills for two years, but cancelled-without-fill, rejected and
        deactivated ones for 24 hours only (others 7 days), and its closed-order cache of
        `/v5/order/realtime` is cleared on restarts: an order looked up by `orderLinkId` more than a
        day after it ended unfilled may be found nowhere (§4.6).
        """
        params: dict[str, object] = {
            "category": CATEGORY,
            "symbol": symbol,
            "orderId": order_id,
            "orderLinkId": order_link_id,
            "orderFilter": order_filter,
            "orderStatus": order_status,
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": 50,
        }
        rows = await self._pages(BybitEndpoints.ORDER_HISTORY, params, BybitOrderList, max_items)
        return parse_rows(parse_order, rows, BybitEndpoints.ORDER_HISTORY)

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

    async def find_order_after_recv_window(
        self, symbol: str, order_link_id: str, request_ms: int
    ) -> BybitOrderReport | None:
        """The answer to an ambiguous create (§8.5): wait until a request signed at `request_ms` (exchange
        time, `BybitError.request_ms`) can no longer be accepted — its receive window and a margin have
        passed on the exchange clock — then look the order up by `orderLinkId`. None means the venue does
        not have it and never will: only then may it be sent again. A failed lookup raises."""
        deadline = request_ms + self.http.recv_window_ms + RECV_WINDOW_MARGIN_MS
        wait_ms = deadline - self.http.now_ms()
        if wait_ms > 0:
            await asyncio.sleep(wait_ms / 1000)
        return await self.find_order(symbol, order_link_id=order_link_id)


def _one_id(order_id: str | None, order_link_id: str | None) -> dict[str, str]:
    if order_id:
        return {"orderId": order_id}
    if order_link_id:
        return {"orderLinkId": order_link_id}
    raise ValueError("give order_id or order_link_id")
