"""Parsing of Bybit's documented examples (docs/exchange_protocol.md), independently of the paper exchange's own serialisation."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from schemas.enums import ExecType, OrderStatus, Side
from trading_daemon.exchange.messages import (
    BybitExecution,
    BybitInstrumentsResult,
    BybitKlineResult,
    BybitOrder,
    BybitWsOrderbook,
    BybitWsOrders,
    BybitWsPositions,
    BybitWsTicker,
)
from trading_daemon.exchange.parsing import (
    drop_open_candle,
    parse_fill,
    parse_fills,
    parse_instrument,
    parse_klines,
    parse_order,
    parse_position,
)
from trading_daemon.exchange.records import BybitOrderStatus

KLINES = b"""{"category":"linear","symbol":"BTCUSDT","list":[
  ["1767225720000","64004.40","64010.00","63998.10","64001.20","12.431","795654.8123"],
  ["1767225660000","64000.00","64012.30","63995.00","64004.40","25.307","1619857.0442"],
  ["1767225600000","64000.10","64003.00","63988.80","64000.00","18.095","1158020.1177"]]}"""

WS_ORDER = b"""{"id":"5923240c6880ab-c59f","topic":"order","creationTime":1767225600203,"data":[{"category":"linear",
  "symbol":"BTCUSDT","orderId":"3f1c2a77","orderLinkId":"demo-0001","parentOrderLinkId":"","side":"Buy","orderType":"Limit",
  "timeInForce":"GTC","price":"64000.00","qty":"0.010","positionIdx":0,"orderStatus":"PartiallyFilled",
  "createType":"CreateByUser","cancelType":"UNKNOWN","rejectReason":"EC_NoError","avgPrice":"64000.00","leavesQty":"0.006",
  "leavesValue":"384","cumExecQty":"0.004","cumExecValue":"256","cumExecFee":"0.0512","cumFeeDetail":{"USDT":"0.0512"},
  "closedPnl":"0","triggerPrice":"","triggerDirection":0,"reduceOnly":false,"closeOnTrigger":false,
  "createdTime":"1767225600123","updatedTime":"1767225600201","rpiTakerAccess":false,"someNewField":{"x":1}}]}"""

EXECUTION = b"""{"category":"linear","symbol":"BTCUSDT","isLeverage":"0","orderId":"3f1c2a77","orderLinkId":"demo-0001",
  "side":"Buy","orderPrice":"64000.00","orderQty":"0.010","leavesQty":"0.006","createType":"CreateByUser",
  "orderType":"Limit","stopOrderType":"UNKNOWN","execId":"1a2b3c4d","execPrice":"64000.00","execQty":"0.004",
  "execValue":"256","execFee":"0.0512","feeRate":"0.0002","feeCurrency":"USDT","execType":"Trade",
  "execTime":"1767225600201","isMaker":true,"execPnl":"0","closedSize":"0","markPrice":"64001.57","seq":420035197801}"""

WS_POSITION = b"""{"id":"1003","topic":"position","creationTime":1767225612350,"data":[{"category":"linear","symbol":"BTCUSDT",
  "positionIdx":0,"side":"Buy","size":"0.010","entryPrice":"64000","positionValue":"640","leverage":"10",
  "markPrice":"64001.20","liqPrice":"","unrealisedPnl":"0.012","curRealisedPnl":"-0.128","cumRealisedPnl":"-12.40371",
  "positionStatus":"Normal","updatedTime":"1767225612345","seq":420035199120}]}"""


def test_klines_reversed_to_oldest_first_and_open_candle() -> None:
    raw = msgspec.json.decode(KLINES, type=BybitKlineResult)
    candles = parse_klines(raw, "1", now_ms=1767225735000)
    assert [c.start_ms for c in candles] == [1767225600000, 1767225660000, 1767225720000]
    assert candles[0].open == 64000.10 and candles[0].volume == 18.095
    assert [c.confirmed for c in candles] == [True, True, False]
    assert len(drop_open_candle(candles, 1767225735000)) == 2
    with pytest.raises(ValueError, match="interval"):
        parse_klines(raw, "W")


def test_ws_order_with_unknown_fields() -> None:
    message = msgspec.json.decode(WS_ORDER, type=BybitWsOrders)
    report = parse_order(message.data[0])
    assert report.status is BybitOrderStatus.PARTIALLY_FILLED
    assert report.order_status is OrderStatus.PARTIALLY_FILLED
    assert report.filled_quantity == Decimal("0.004") and report.leaves_quantity == Decimal("0.006")
    assert report.cum_fee == Decimal("0.0512") and report.avg_fill_price == Decimal("64000")


@pytest.mark.parametrize("avg", ['""', '"0"'])
def test_no_average_price(avg: str) -> None:
    order = msgspec.json.decode(
        b'{"orderId":"o","symbol":"BTCUSDT","side":"Sell","orderType":"Limit","price":"64000.00","qty":"0.010",'
        b'"orderStatus":"Cancelled","avgPrice":' + avg.encode() + b',"leavesQty":"","cumExecQty":"0"}',
        type=BybitOrder,
    )
    report = parse_order(order)
    assert report.avg_fill_price is None and report.leaves_quantity == 0
    assert report.order_status is OrderStatus.CANCELLED


def test_execution_to_fill() -> None:
    fill = parse_fill(msgspec.json.decode(EXECUTION, type=BybitExecution))
    assert fill.exec_id == "1a2b3c4d" and fill.side is Side.BUY and fill.is_maker
    assert fill.price == Decimal("64000.00") and fill.quantity == Decimal("0.004")
    assert fill.fee == Decimal("0.0512") and fill.ts == 1767225600201
    assert fill.client_order_id == "demo-0001" and fill.exec_type is ExecType.TRADE


def test_non_fill_executions_are_skipped() -> None:
    settle = EXECUTION.replace(b'"execType":"Trade"', b'"execType":"Settle"')
    rows = [msgspec.json.decode(e, type=BybitExecution) for e in (EXECUTION, settle)]
    assert [f.exec_id for f in parse_fills(rows)] == ["1a2b3c4d"]


def test_ws_position_uses_entry_price() -> None:
    message = msgspec.json.decode(WS_POSITION, type=BybitWsPositions)
    position = parse_position(message.data[0])
    assert position.side is Side.BUY and position.size == Decimal("0.010")
    assert position.entry_price == Decimal("64000") and position.liq_price is None
    assert position.cum_realised_pnl == Decimal("-12.40371")


def test_orderbook_delta_and_ticker_delta() -> None:
    delta = msgspec.json.decode(
        b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1767225600140,"data":{"s":"BTCUSDT",'
        b'"b":[["64000.00","0.010"],["63999.80","0"]],"a":[],"u":17350022,"seq":420035197749},"cts":1767225600138}',
        type=BybitWsOrderbook,
    )
    assert delta.data.b[1] == ("63999.80", "0") and delta.data.a == [] and delta.cts == 1767225600138
    ticker = msgspec.json.decode(
        b'{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","markPrice":"64001.20"},'
        b'"cs":420035197790,"ts":1767225600250}',
        type=BybitWsTicker,
    )
    assert ticker.data.markPrice == "64001.20" and ticker.data.lastPrice is None  # unchanged field


def test_instrument_example() -> None:
    raw = msgspec.json.decode(
        b'{"category":"linear","list":[{"symbol":"BTCUSDT","contractType":"LinearPerpetual","status":"Trading",'
        b'"baseCoin":"BTC","quoteCoin":"USDT","settleCoin":"USDT","priceScale":"2","leverageFilter":{"minLeverage":"1",'
        b'"maxLeverage":"100.00","leverageStep":"0.01"},"priceFilter":{"minPrice":"0.10","maxPrice":"1999999.80",'
        b'"tickSize":"0.10"},"lotSizeFilter":{"maxOrderQty":"1190.000","minOrderQty":"0.001","qtyStep":"0.001",'
        b'"maxMktOrderQty":"500.000","minNotionalValue":"5"},"fundingInterval":480,"preListingInfo":null}],'
        b'"nextPageCursor":""}',
        type=BybitInstrumentsResult,
    )
    info = parse_instrument(raw.list[0])
    assert info.tick_size == Decimal("0.1") and info.max_market_order_qty == Decimal(500)
    assert info.min_notional == Decimal(5) and info.price_scale == 2 and info.max_leverage == 100
