"""Typed Bybit v5 account endpoints: executions, positions, the position's TP/SL, leverage, balance, fees.

The reconciliation side of the client (docs/exchange_protocol.md §4.9–4.16): every query raises on
failure (a failed position query is never "flat"), follows every page, and reads time ranges longer than
Bybit's 7-day limit 7 days at a time.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from schemas.enums import OrderType
from schemas.trading import Fill
from trading_daemon.exchange.constants import (
    ACCOUNT_TYPE,
    CATEGORY,
    POSITION_IDX_ONE_WAY,
    SETTLE_COIN,
    BybitEndpoints,
    BybitRetCode,
)
from trading_daemon.exchange.errors import BybitOrderRejected, BybitProtocolError
from trading_daemon.exchange.messages import (
    BybitExecutionList,
    BybitFeeRateList,
    BybitPositionList,
    BybitWalletResult,
)
from trading_daemon.exchange.parsing import (
    parse_execution,
    parse_fee_rate,
    parse_fills,
    parse_position,
    parse_wallet,
)
from trading_daemon.exchange.records import (
    BybitExecType,
    BybitExecutionPage,
    BybitExecutionReport,
    BybitFeeRates,
    BybitPositionReport,
    BybitTpslMode,
    BybitTriggerBy,
    BybitWalletBalance,
)
from trading_daemon.exchange.rest_base import BybitRestBase, parse_rows, query_windows, readable


class BybitAccountEndpoints(BybitRestBase):
    """Executions, positions, trading-stop, leverage, wallet and fee rates (the base of `BybitRestClient`)."""

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
        """Fills and funding (`/v5/execution/list`, the `execType`s `schemas.trading.Fill` holds), oldest
        first; a range longer than 7 days is read 7 days at a time. Settlement-type executions are left
        out (logged): `get_execution_reports` carries every type."""
        rows = await self._execution_rows(symbol, order_id, order_link_id, start_ms, end_ms, None, max_items)
        with readable(BybitEndpoints.EXECUTIONS):
            return parse_fills(rows)

    async def get_execution_reports(
        self,
        symbol: str | None = None,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        exec_type: BybitExecType | None = None,
        order_id: str | None = None,
        order_link_id: str | None = None,
    ) -> list[BybitExecutionReport]:
        """Every execution since `start_ms` (to `end_ms`, default now), of every `execType` unless one is
        given — `Trade` fills, `Funding` payments, ADL and liquidation trades — oldest first, de-duplicated
        by `execId`; ranges longer than 7 days are read 7 days at a time, every page followed."""
        rows = await self._execution_rows(symbol, order_id, order_link_id, start_ms, end_ms, exec_type, None)
        unique = {r.execId: r for r in rows}
        return sorted(
            parse_rows(parse_execution, unique.values(), BybitEndpoints.EXECUTIONS),
            key=lambda r: (r.ts, r.exec_id),
        )

    async def get_execution_page(
        self,
        symbol: str | None = None,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        exec_type: BybitExecType | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> BybitExecutionPage:
        """One page of `/v5/execution/list` (newest first, as sent) and the cursor of the next one: for
        a caller that keeps its place between calls. The window may span at most 7 days."""
        params: dict[str, object] = {
            "category": CATEGORY,
            "symbol": symbol,
            "startTime": start_ms,
            "endTime": end_ms,
            "execType": exec_type,
            "limit": limit,
            "cursor": cursor or None,
        }
        page = await self._get(BybitEndpoints.EXECUTIONS, params, BybitExecutionList)
        return BybitExecutionPage(
            executions=parse_rows(parse_execution, page.list, BybitEndpoints.EXECUTIONS),
            next_cursor=page.nextPageCursor,
        )

    async def _execution_rows(
        self,
        symbol: str | None,
        order_id: str | None,
        order_link_id: str | None,
        start_ms: int | None,
        end_ms: int | None,
        exec_type: BybitExecType | None,
        max_items: int | None,
    ) -> list[Any]:
        by_order = order_id is not None or order_link_id is not None  # ids override the time filters
        end = end_ms if end_ms is not None else self.http.now_ms()
        windows = [(None, None)] if by_order else list(query_windows(start_ms, end))
        rows: list[Any] = []
        for i, (start, stop) in enumerate(windows):
            # Without an end the last window is left open (Bybit: start + 7 days): the client's estimate of
            # the exchange clock may trail it by a few ms, and an execution of that moment must not be cut.
            open_end = end_ms is None and i == len(windows) - 1
            params: dict[str, object] = {
                "category": CATEGORY,
                "symbol": symbol,
                "orderId": order_id,
                "orderLinkId": order_link_id,
                "startTime": start,
                "endTime": None if open_end else stop,
                "execType": exec_type,
                "limit": 100,
            }
            remaining = None if max_items is None else max_items - len(rows)
            rows += await self._pages(BybitEndpoints.EXECUTIONS, params, BybitExecutionList, remaining)
            if max_items is not None and len(rows) >= max_items:
                break
        return rows

    async def get_positions(self, symbol: str | None = None) -> list[BybitPositionReport]:
        """With `symbol`: that position, even flat. Without: every non-flat USDT position."""
        params: dict[str, object] = {
            "category": CATEGORY,
            "symbol": symbol,
            "settleCoin": None if symbol else SETTLE_COIN,
            "limit": 200,
        }
        rows = await self._pages(BybitEndpoints.POSITIONS, params, BybitPositionList, None)
        return parse_rows(parse_position, rows, BybitEndpoints.POSITIONS)

    async def get_position(self, symbol: str) -> BybitPositionReport:
        """The one-way position of `symbol`; size 0 (`is_flat`) is the venue saying it is flat. Bybit
        always lists the position of a symbol asked for, so an answer without it raises: a failed or
        odd query never reads as "flat"."""
        found = [p for p in await self.get_positions(symbol) if p.symbol == symbol]
        if len(found) != 1:
            raise BybitProtocolError(
                f"position/list for {symbol} answered {len(found)} positions of it, one expected",
                ret_code=0,
                endpoint=BybitEndpoints.POSITIONS.path,
                venue_answered=True,
            )
        return found[0]

    async def set_trading_stop(
        self,
        symbol: str,
        *,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
        tp_trigger_by: BybitTriggerBy | None = None,
        sl_trigger_by: BybitTriggerBy | None = None,
        tpsl_mode: BybitTpslMode = BybitTpslMode.FULL,
        tp_size: Decimal | None = None,
        sl_size: Decimal | None = None,
        tp_order_type: OrderType | None = None,
        sl_order_type: OrderType | None = None,
        tp_limit_price: Decimal | None = None,
        sl_limit_price: Decimal | None = None,
    ) -> bool:
        """`/v5/position/trading-stop`: the position's take-profit/stop-loss, kept by the venue (§4.16).

        Full mode (default): sets or moves the whole position's TP/SL (market orders when they fire);
        `Decimal(0)` removes one; None leaves it. Returns False when the venue answers 34040 "not
        modified" (it already has these values — possibly from an earlier attempt of this very call, as
        Full requests are resent after an unknown outcome). Partial mode adds a TP and/or SL of
        `tp_size`/`sl_size` (equal when both), Market or Limit (`tp_limit_price`); it is sent once
        (a resend would add a second pair). Refusals raise: no position (10001 "can not set tp/sl/ts for
        zero position"), a price on the wrong side of the market (10001), a size above the position
        (110058)."""
        body = {
            "category": CATEGORY,
            "symbol": symbol,
            "tpslMode": tpsl_mode,
            "positionIdx": POSITION_IDX_ONE_WAY,
            "takeProfit": take_profit,
            "stopLoss": stop_loss,
            "tpTriggerBy": tp_trigger_by,
            "slTriggerBy": sl_trigger_by,
            "tpSize": tp_size,
            "slSize": sl_size,
            "tpOrderType": tp_order_type,
            "slOrderType": sl_order_type,
            "tpLimitPrice": tp_limit_price,
            "slLimitPrice": sl_limit_price,
        }
        safe = tpsl_mode is BybitTpslMode.FULL
        try:
            await self.http.request(BybitEndpoints.TRADING_STOP, body, retry_safe=safe)
        except BybitOrderRejected as exc:
            if exc.ret_code == BybitRetCode.NOT_MODIFIED:
                return False
            raise
        return True

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
            raise BybitProtocolError(
                "wallet-balance returned no account",
                ret_code=0,
                endpoint=BybitEndpoints.WALLET_BALANCE.path,
                venue_answered=True,
            )
        (wallet,) = parse_rows(parse_wallet, result.list[:1], BybitEndpoints.WALLET_BALANCE)
        return wallet

    async def get_fee_rates(self, symbol: str | None = None) -> list[BybitFeeRates]:
        """The account's maker/taker rates (call once at start-up, limit 5/s)."""
        params = {"category": CATEGORY, "symbol": symbol}
        rows = (await self._get(BybitEndpoints.FEE_RATE, params, BybitFeeRateList)).list
        return parse_rows(parse_fee_rate, rows, BybitEndpoints.FEE_RATE)
