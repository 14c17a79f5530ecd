"""Wire structs → records: `schemas` records where they exist, `records.Bybit*` reports otherwise.

Market data becomes float (`schemas.market`), money stays `Decimal` (orders, fills, positions,
balances). Numbers are compared numerically, never as strings, and `""`/`"0"` both mean "no price"
where Bybit uses them that way (§1.2).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import TypeVar

import structlog

from schemas.enums import ExecType, OrderType, Side, TimeInForce
from schemas.market import BookLevel, BookSnapshot, Candle, PublicTrade
from schemas.trading import Fill
from trading_daemon.exchange.constants import KLINE_INTERVAL_MS
from trading_daemon.exchange.messages import (
    BybitExecution,
    BybitFeeRate,
    BybitInstrument,
    BybitKlineResult,
    BybitOrder,
    BybitOrderbookResult,
    BybitPosition,
    BybitRecentTrade,
    BybitTicker,
    BybitWalletAccount,
    BybitWsExecutions,
    BybitWsKlines,
    BybitWsOrderbook,
    BybitWsOrders,
    BybitWsPositions,
    BybitWsTrade,
    BybitWsWallet,
)
from trading_daemon.exchange.records import (
    BybitCoinBalance,
    BybitExecType,
    BybitExecutionReport,
    BybitFeeRates,
    BybitInstrumentInfo,
    BybitOrderReport,
    BybitOrderStatus,
    BybitPositionReport,
    BybitStopOrderType,
    BybitTickerInfo,
    BybitTpslMode,
    BybitTriggerBy,
    BybitTriggerDirection,
    BybitWalletBalance,
)

log = structlog.get_logger(__name__)

_TIME_IN_FORCE = {t.value: t for t in TimeInForce}
E = TypeVar("E", bound=Enum)
_UNSET = ("", "UNKNOWN")


def enum_or_none(kind: type[E], text: str, field: str) -> E | None:
    """A Bybit enum value; `""` and `"UNKNOWN"` (Bybit's unset) → None; anything else unknown raises
    ValueError naming the field, so that a new venue value is noticed rather than misread."""
    if text in _UNSET:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{field}: unknown value {text!r}") from None


def dec(text: str, field: str = "value") -> Decimal:
    """A required decimal string."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{field}: not a decimal: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"{field}: not a finite decimal: {text!r}")
    return value


def opt_dec(text: str | None, field: str = "value") -> Decimal | None:
    """An optional decimal string: `""` (and None) → None."""
    return None if text is None or text == "" else dec(text, field)


def dec_or_zero(text: str | None, field: str = "value") -> Decimal:
    """A decimal string where `""` means zero."""
    return opt_dec(text, field) or Decimal(0)


def price_or_none(text: str | None, field: str = "price") -> Decimal | None:
    """A price where `""` and `"0"` both mean "none" (avgPrice, liqPrice, takeProfit …)."""
    value = opt_dec(text, field)
    return value if value else None


def opt_int(text: str | None) -> int | None:
    """An optional integer string."""
    return int(text) if text else None


def kline_interval_ms(interval: str) -> int:
    """Milliseconds of a kline interval that maps onto `schemas.market.Candle`."""
    try:
        return KLINE_INTERVAL_MS[interval]
    except KeyError:
        raise ValueError(
            f"kline interval {interval!r} is not supported as Candle (use one of {sorted(KLINE_INTERVAL_MS)})"
        ) from None


def parse_instrument(raw: BybitInstrument) -> BybitInstrumentInfo:
    """Trading rules of one instrument."""
    lot, px, lev = raw.lotSizeFilter, raw.priceFilter, raw.leverageFilter
    return BybitInstrumentInfo(
        symbol=raw.symbol,
        status=raw.status,
        contract_type=raw.contractType,
        base_coin=raw.baseCoin,
        quote_coin=raw.quoteCoin,
        settle_coin=raw.settleCoin,
        price_scale=int(raw.priceScale or 0),
        tick_size=dec(px.tickSize, "tickSize"),
        min_price=opt_dec(px.minPrice, "minPrice"),
        max_price=opt_dec(px.maxPrice, "maxPrice"),
        qty_step=dec(lot.qtyStep, "qtyStep"),
        min_order_qty=dec(lot.minOrderQty, "minOrderQty"),
        max_order_qty=opt_dec(lot.maxOrderQty, "maxOrderQty"),
        max_market_order_qty=opt_dec(lot.maxMktOrderQty, "maxMktOrderQty"),
        min_notional=opt_dec(lot.minNotionalValue, "minNotionalValue"),
        min_leverage=dec(lev.minLeverage, "minLeverage"),
        max_leverage=dec(lev.maxLeverage, "maxLeverage"),
        leverage_step=dec(lev.leverageStep, "leverageStep"),
        funding_interval_min=raw.fundingInterval,
    )


def _levels(pairs: Iterable[tuple[str, str]]) -> list[BookLevel]:
    return [BookLevel(float(p), float(s)) for p, s in pairs if float(s) > 0]


def parse_orderbook(raw: BybitOrderbookResult) -> BookSnapshot:
    """The REST order book (best first on both sides)."""
    return BookSnapshot(
        symbol=raw.s, ts=raw.ts, bids=_levels(raw.b), asks=_levels(raw.a), update_id=raw.u, seq=raw.seq
    )


def parse_ws_orderbook_snapshot(msg: BybitWsOrderbook) -> BookSnapshot:
    """A WebSocket `snapshot` message as a book (deltas are applied by the local book instead)."""
    if msg.type != "snapshot":
        raise ValueError(f"{msg.topic}: expected a snapshot, got {msg.type!r}")
    data = msg.data
    return BookSnapshot(
        symbol=data.s, ts=msg.ts, bids=_levels(data.b), asks=_levels(data.a), update_id=data.u, seq=data.seq
    )


def parse_klines(raw: BybitKlineResult, interval: str, now_ms: int | None = None) -> list[Candle]:
    """REST klines, oldest first (Bybit sends newest first, §3.4).

    Candles still open at `now_ms` (server time) get `confirmed=False`; without `now_ms` every row is
    taken as closed. `drop_open_candle` removes them.
    """
    interval_ms = kline_interval_ms(interval)
    candles = [
        Candle(
            symbol=raw.symbol,
            start_ms=int(row[0]),
            open=float(row[1]),
            high=float(row[2]),
            low=float(row[3]),
            close=float(row[4]),
            volume=float(row[5]),
            turnover=float(row[6]),
            interval_ms=interval_ms,
            confirmed=now_ms is None or int(row[0]) + interval_ms <= now_ms,
        )
        for row in raw.list
    ]
    candles.sort(key=lambda c: c.start_ms)
    return candles


def drop_open_candle(candles: list[Candle], now_ms: int) -> list[Candle]:
    """Only the candles that had closed at `now_ms` (server time)."""
    return [c for c in candles if c.end_ms <= now_ms]


def parse_ws_klines(msg: BybitWsKlines) -> list[Candle]:
    """Kline pushes; `confirmed` is Bybit's `confirm` (only confirmed candles should be stored)."""
    symbol = msg.topic.rsplit(".", 1)[-1]
    return [
        Candle(
            symbol=symbol,
            start_ms=k.start,
            open=float(k.open),
            high=float(k.high),
            low=float(k.low),
            close=float(k.close),
            volume=float(k.volume),
            turnover=float(k.turnover),
            interval_ms=kline_interval_ms(k.interval),
            confirmed=k.confirm,
        )
        for k in msg.data
    ]


def parse_ticker(raw: BybitTicker) -> BybitTickerInfo:
    """A REST ticker."""
    return BybitTickerInfo(
        symbol=raw.symbol,
        last_price=opt_dec(raw.lastPrice),
        mark_price=opt_dec(raw.markPrice),
        index_price=opt_dec(raw.indexPrice),
        bid_price=opt_dec(raw.bid1Price),
        bid_size=opt_dec(raw.bid1Size),
        ask_price=opt_dec(raw.ask1Price),
        ask_size=opt_dec(raw.ask1Size),
        funding_rate=opt_dec(raw.fundingRate),
        next_funding_ms=opt_int(raw.nextFundingTime),
        volume_24h=opt_dec(raw.volume24h),
        turnover_24h=opt_dec(raw.turnover24h),
        open_interest=opt_dec(raw.openInterest),
    )


def parse_recent_trades(rows: Iterable[BybitRecentTrade]) -> list[PublicTrade]:
    """REST recent trades, oldest first (the order is undocumented, so sort by time then seq)."""
    trades = [
        PublicTrade(
            symbol=r.symbol,
            ts=int(r.time),
            trade_id=r.execId,
            side=Side(r.side),
            price=float(r.price),
            size=float(r.size),
            block_trade=r.isBlockTrade,
            seq=int(r.seq or 0),
        )
        for r in rows
    ]
    trades.sort(key=lambda t: (t.ts, t.seq))
    return trades


def parse_ws_trades(rows: Iterable[BybitWsTrade]) -> list[PublicTrade]:
    """`publicTrade` entries (already in fill-time order)."""
    return [
        PublicTrade(
            symbol=t.s,
            ts=t.T,
            trade_id=t.i,
            side=Side(t.S),
            price=float(t.p),
            size=float(t.v),
            block_trade=t.BT,
            seq=t.seq,
        )
        for t in rows
    ]


def parse_order(raw: BybitOrder) -> BybitOrderReport:
    """An order object from REST or the `order` topic."""
    order_type = OrderType(raw.orderType)
    fee = raw.cumFeeDetail.get("USDT") if raw.cumFeeDetail else None
    return BybitOrderReport(
        order_id=raw.orderId,
        order_link_id=raw.orderLinkId,
        symbol=raw.symbol,
        side=Side(raw.side),
        order_type=order_type,
        time_in_force=_TIME_IN_FORCE.get(raw.timeInForce),
        status=BybitOrderStatus(raw.orderStatus),
        # A market order shows its slippage-protection price, which is not a limit the client set.
        price=None if order_type is OrderType.MARKET else price_or_none(raw.price),
        quantity=dec(raw.qty, "qty"),
        filled_quantity=dec_or_zero(raw.cumExecQty, "cumExecQty"),
        leaves_quantity=dec_or_zero(raw.leavesQty, "leavesQty"),
        avg_fill_price=price_or_none(raw.avgPrice, "avgPrice"),
        cum_fee=dec_or_zero(fee if fee is not None else raw.cumExecFee, "cumExecFee"),
        reduce_only=raw.reduceOnly,
        reject_reason=raw.rejectReason,
        cancel_type=raw.cancelType,
        created_ms=int(raw.createdTime or 0),
        updated_ms=int(raw.updatedTime or 0),
        close_on_trigger=raw.closeOnTrigger,
        create_type=raw.createType,
        position_idx=raw.positionIdx,
        cum_exec_value=dec_or_zero(raw.cumExecValue, "cumExecValue"),
        stop_order_type=enum_or_none(BybitStopOrderType, raw.stopOrderType, "stopOrderType"),
        trigger_price=price_or_none(raw.triggerPrice, "triggerPrice"),
        trigger_direction=BybitTriggerDirection(raw.triggerDirection) if raw.triggerDirection else None,
        trigger_by=enum_or_none(BybitTriggerBy, raw.triggerBy, "triggerBy"),
        parent_order_link_id=raw.parentOrderLinkId,
        take_profit=price_or_none(raw.takeProfit, "takeProfit"),
        stop_loss=price_or_none(raw.stopLoss, "stopLoss"),
        tp_trigger_by=enum_or_none(BybitTriggerBy, raw.tpTriggerBy, "tpTriggerBy"),
        sl_trigger_by=enum_or_none(BybitTriggerBy, raw.slTriggerBy, "slTriggerBy"),
        tpsl_mode=enum_or_none(BybitTpslMode, raw.tpslMode, "tpslMode"),
        tp_limit_price=price_or_none(raw.tpLimitPrice, "tpLimitPrice"),
        sl_limit_price=price_or_none(raw.slLimitPrice, "slLimitPrice"),
    )


_EXEC_TYPES = {e.value: e for e in ExecType}


def parse_fill(raw: BybitExecution) -> Fill:
    """One execution as a `Fill`; raises ValueError for exec types the fills table does not hold."""
    exec_type = _EXEC_TYPES.get(raw.execType)
    if exec_type is None:
        raise ValueError(f"execution {raw.execId}: execType {raw.execType!r} is not a fill")
    return Fill(
        exec_id=raw.execId,
        symbol=raw.symbol,
        side=Side(raw.side),
        price=dec(raw.execPrice, "execPrice"),
        quantity=dec(raw.execQty, "execQty"),
        fee=dec_or_zero(raw.execFee, "execFee"),
        ts=int(raw.execTime),
        exec_type=exec_type,
        fee_currency=raw.feeCurrency or "USDT",
        is_maker=raw.isMaker,
        client_order_id=raw.orderLinkId or None,
        exchange_order_id=raw.orderId or None,
        closed_pnl=opt_dec(raw.execPnl, "execPnl"),
    )


def parse_fills(rows: Iterable[BybitExecution]) -> list[Fill]:
    """Executions as fills, oldest first; executions that are not fills (Settle, Delivery …) are
    logged and left out, since the fills table has no place for them."""
    fills: list[Fill] = []
    for row in rows:
        if row.execType not in _EXEC_TYPES:
            log.warning("bybit execution skipped: not a fill", exec_id=row.execId, exec_type=row.execType)
            continue
        fills.append(parse_fill(row))  # a fill that cannot be read raises: never skipped as "not a fill"
    fills.sort(key=lambda f: (f.ts, f.exec_id))
    return fills


def parse_execution(raw: BybitExecution) -> BybitExecutionReport:
    """One execution of any `execType` (unknown types are kept as `UNKNOWN` and logged, never dropped)."""
    try:
        exec_type = BybitExecType(raw.execType or "Trade")
    except ValueError:
        log.warning("bybit execution of an unknown execType", exec_id=raw.execId, exec_type=raw.execType)
        exec_type = BybitExecType.UNKNOWN
    order_type = raw.orderType if raw.orderType in ("Market", "Limit") else None
    return BybitExecutionReport(
        exec_id=raw.execId,
        exec_type=exec_type,
        symbol=raw.symbol,
        side=Side(raw.side) if raw.side in ("Buy", "Sell") else None,
        order_id=raw.orderId,
        order_link_id=raw.orderLinkId,
        order_type=OrderType(order_type) if order_type is not None else None,
        stop_order_type=enum_or_none(BybitStopOrderType, raw.stopOrderType, "stopOrderType"),
        create_type=raw.createType,
        price=dec(raw.execPrice, "execPrice"),
        quantity=dec(raw.execQty, "execQty"),
        value=dec_or_zero(raw.execValue, "execValue"),
        fee=dec_or_zero(raw.execFee, "execFee"),
        fee_rate=opt_dec(raw.feeRate, "feeRate"),
        fee_currency=raw.feeCurrency or "USDT",
        is_maker=raw.isMaker,
        ts=int(raw.execTime),
        leaves_quantity=opt_dec(raw.leavesQty, "leavesQty"),
        closed_size=dec_or_zero(raw.closedSize, "closedSize"),
        exec_pnl=opt_dec(raw.execPnl, "execPnl"),
        mark_price=price_or_none(raw.markPrice, "markPrice"),
        seq=raw.seq,
    )


def parse_executions(rows: Iterable[BybitExecution]) -> list[BybitExecutionReport]:
    """Executions of every type, oldest first (ties by `execId`: Bybit's order is unstable, §4.9)."""
    reports = [parse_execution(row) for row in rows]
    reports.sort(key=lambda r: (r.ts, r.exec_id))
    return reports


def parse_ws_orders(msg: BybitWsOrders) -> list[BybitOrderReport]:
    """The orders of one `order` topic message, in the venue's order."""
    return [parse_order(o) for o in msg.data]


def parse_ws_executions(msg: BybitWsExecutions) -> list[BybitExecutionReport]:
    """The executions of one `execution` topic message (any `execType`), in the venue's order."""
    return [parse_execution(e) for e in msg.data]


def parse_ws_positions(msg: BybitWsPositions) -> list[BybitPositionReport]:
    """The positions of one `position` topic message (flat ones included: size 0)."""
    return [parse_position(p) for p in msg.data]


def parse_ws_wallet(msg: BybitWsWallet) -> list[BybitWalletBalance]:
    """The account balances of one `wallet` topic message."""
    return [parse_wallet(w) for w in msg.data]


def parse_position(raw: BybitPosition) -> BybitPositionReport:
    """A REST or WebSocket position (the entry price is `avgPrice` or `entryPrice`)."""
    size = dec_or_zero(raw.size, "size")
    return BybitPositionReport(
        symbol=raw.symbol,
        side=Side(raw.side) if raw.side in ("Buy", "Sell") and size else None,
        size=size,
        entry_price=price_or_none(raw.avgPrice or raw.entryPrice, "avgPrice"),
        leverage=opt_dec(raw.leverage, "leverage"),
        mark_price=price_or_none(raw.markPrice, "markPrice"),
        liq_price=price_or_none(raw.liqPrice, "liqPrice"),
        unrealised_pnl=dec_or_zero(raw.unrealisedPnl, "unrealisedPnl"),
        cum_realised_pnl=dec_or_zero(raw.cumRealisedPnl, "cumRealisedPnl"),
        position_idx=raw.positionIdx,
        updated_ms=int(raw.updatedTime or 0),
        take_profit=price_or_none(raw.takeProfit, "takeProfit"),
        stop_loss=price_or_none(raw.stopLoss, "stopLoss"),
        trailing_stop=price_or_none(raw.trailingStop, "trailingStop"),
        position_value=dec_or_zero(raw.positionValue, "positionValue"),
        cur_realised_pnl=dec_or_zero(raw.curRealisedPnl, "curRealisedPnl"),
        seq=raw.seq,
    )


def parse_wallet(raw: BybitWalletAccount) -> BybitWalletBalance:
    """The unified account's balance."""
    return BybitWalletBalance(
        account_type=raw.accountType,
        total_equity=dec_or_zero(raw.totalEquity),
        total_wallet_balance=dec_or_zero(raw.totalWalletBalance),
        total_available_balance=dec_or_zero(raw.totalAvailableBalance),
        total_initial_margin=dec_or_zero(raw.totalInitialMargin),
        total_maintenance_margin=dec_or_zero(raw.totalMaintenanceMargin),
        coins={
            c.coin: BybitCoinBalance(
                coin=c.coin,
                equity=dec_or_zero(c.equity),
                wallet_balance=dec_or_zero(c.walletBalance),
                unrealised_pnl=dec_or_zero(c.unrealisedPnl),
                position_im=dec_or_zero(c.totalPositionIM),
                order_im=dec_or_zero(c.totalOrderIM),
            )
            for c in raw.coin
        },
    )


def parse_fee_rate(raw: BybitFeeRate) -> BybitFeeRates:
    """Fee rates of one symbol."""
    return BybitFeeRates(symbol=raw.symbol, taker=dec(raw.takerFeeRate), maker=dec(raw.makerFeeRate))
