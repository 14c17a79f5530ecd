"""Bybit v5 wire payloads as frozen msgspec structs, spelled as the venue spells them.

Decimal values stay strings here (Bybit sends `""` for many unset numbers, §1.2); `parsing` turns
them into `Decimal`/float records. Unknown fields are ignored and optional fields default, because
Bybit adds fields without notice (§4.7).
"""

from __future__ import annotations

import builtins

import msgspec


class BybitEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """Every REST reply (§1.3)."""

    retCode: int
    retMsg: str = ""
    result: msgspec.Raw = msgspec.Raw(b"{}")
    time: int = 0


# --- public REST (§3) -------------------------------------------------------------------------------


class BybitServerTime(msgspec.Struct, frozen=True, kw_only=True):
    """`/v5/market/time` result (§3.1)."""

    timeSecond: str
    timeNano: str = ""


class BybitPriceFilter(msgspec.Struct, frozen=True, kw_only=True):
    """`priceFilter` of an instrument."""

    tickSize: str
    minPrice: str = ""
    maxPrice: str = ""


class BybitLotSizeFilter(msgspec.Struct, frozen=True, kw_only=True):
    """`lotSizeFilter` of an instrument."""

    qtyStep: str
    minOrderQty: str
    maxOrderQty: str = ""
    maxMktOrderQty: str = ""
    minNotionalValue: str = ""


class BybitLeverageFilter(msgspec.Struct, frozen=True, kw_only=True):
    """`leverageFilter` of an instrument."""

    minLeverage: str = "1"
    maxLeverage: str = "1"
    leverageStep: str = "0.01"


class BybitInstrument(msgspec.Struct, frozen=True, kw_only=True):
    """One `/v5/market/instruments-info` entry (§3.2)."""

    symbol: str
    contractType: str = ""
    status: str = ""
    baseCoin: str = ""
    quoteCoin: str = ""
    settleCoin: str = ""
    priceScale: str = ""
    priceFilter: BybitPriceFilter
    lotSizeFilter: BybitLotSizeFilter
    leverageFilter: BybitLeverageFilter = BybitLeverageFilter()
    fundingInterval: int = 480


class BybitInstrumentsResult(msgspec.Struct, frozen=True, kw_only=True):
    """`/v5/market/instruments-info` result, one page."""

    list: builtins.list[BybitInstrument]
    category: str = ""
    nextPageCursor: str = ""


class BybitOrderbookResult(msgspec.Struct, frozen=True, kw_only=True):
    """`/v5/market/orderbook` result (§3.3)."""

    s: str
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    ts: int
    u: int = 0
    seq: int = 0
    cts: int = 0


class BybitKlineResult(msgspec.Struct, frozen=True, kw_only=True):
    """`/v5/market/kline` result: rows of 7 strings, newest first (§3.4)."""

    list: builtins.list[builtins.list[str]]
    symbol: str = ""
    category: str = ""


class BybitTicker(msgspec.Struct, frozen=True, kw_only=True):
    """One `/v5/market/tickers` entry (§3.5)."""

    symbol: str
    lastPrice: str = ""
    markPrice: str = ""
    indexPrice: str = ""
    bid1Price: str = ""
    bid1Size: str = ""
    ask1Price: str = ""
    ask1Size: str = ""
    volume24h: str = ""
    turnover24h: str = ""
    openInterest: str = ""
    fundingRate: str = ""
    nextFundingTime: str = ""


class BybitTickersResult(msgspec.Struct, frozen=True, kw_only=True):
    """`/v5/market/tickers` result."""

    list: builtins.list[BybitTicker]
    category: str = ""


class BybitRecentTrade(msgspec.Struct, frozen=True, kw_only=True):
    """One `/v5/market/recent-trade` entry (§3.6)."""

    execId: str
    symbol: str
    price: str
    size: str
    side: str
    time: str
    isBlockTrade: bool = False
    seq: str = "0"


class BybitRecentTradesResult(msgspec.Struct, frozen=True, kw_only=True):
    """`/v5/market/recent-trade` result."""

    list: builtins.list[BybitRecentTrade]
    category: str = ""


# --- private REST (§4) ------------------------------------------------------------------------------


class BybitOrderIds(msgspec.Struct, frozen=True, kw_only=True):
    """Result of create/amend/cancel: the order's two ids (§4.1–4.3)."""

    orderId: str
    orderLinkId: str = ""


class BybitCancelAllResult(msgspec.Struct, frozen=True, kw_only=True):
    """`/v5/order/cancel-all` result (§4.4)."""

    list: builtins.list[BybitOrderIds]
    success: str = ""


class BybitOrder(msgspec.Struct, frozen=True, kw_only=True):
    """The order object of `/v5/order/realtime`, `/v5/order/history` and the `order` topic (§4.7)."""

    orderId: str
    orderLinkId: str = ""
    symbol: str
    side: str
    orderType: str
    price: str = ""
    qty: str
    timeInForce: str = "GTC"
    orderStatus: str
    positionIdx: int = 0
    cumExecQty: str = "0"
    cumExecValue: str = "0"
    cumExecFee: str = "0"
    leavesQty: str = ""
    avgPrice: str = ""
    cancelType: str = ""
    rejectReason: str = ""
    reduceOnly: bool = False
    closeOnTrigger: bool = False
    createType: str = ""
    parentOrderLinkId: str = ""
    stopOrderType: str = ""
    triggerPrice: str = ""
    triggerDirection: int = 0
    triggerBy: str = ""
    takeProfit: str = ""
    stopLoss: str = ""
    tpTriggerBy: str = ""
    slTriggerBy: str = ""
    tpslMode: str = ""
    tpLimitPrice: str = ""
    slLimitPrice: str = ""
    createdTime: str = "0"
    updatedTime: str = "0"
    cumFeeDetail: dict[str, str] | None = None
    category: str = ""  # WebSocket only
    closedPnl: str = ""  # WebSocket only


class BybitOrderList(msgspec.Struct, frozen=True, kw_only=True):
    """`/v5/order/realtime` or `/v5/order/history` result, one page."""

    list: builtins.list[BybitOrder]
    category: str = ""
    nextPageCursor: str = ""


class BybitExecution(msgspec.Struct, frozen=True, kw_only=True):
    """One fill of `/v5/execution/list` or the `execution` topic (§4.9, §6.5)."""

    execId: str
    symbol: str
    orderId: str = ""
    orderLinkId: str = ""
    side: str
    execPrice: str
    execQty: str
    execValue: str = ""
    execFee: str = "0"
    feeRate: str = ""
    feeCurrency: str = ""
    execType: str = "Trade"
    execTime: str
    isMaker: bool = False
    orderType: str = ""
    stopOrderType: str = ""
    createType: str = ""
    leavesQty: str = ""
    closedSize: str = ""
    execPnl: str = ""
    markPrice: str = ""
    seq: int = 0


class BybitExecutionList(msgspec.Struct, frozen=True, kw_only=True):
    """`/v5/execution/list` result, one page."""

    list: builtins.list[BybitExecution]
    category: str = ""
    nextPageCursor: str = ""


class BybitPosition(msgspec.Struct, frozen=True, kw_only=True):
    """REST position (`avgPrice`) or WebSocket position (`entryPrice`) (§4.10, §6.6)."""

    symbol: str
    side: str = ""
    size: str = "0"
    positionIdx: int = 0
    avgPrice: str = ""
    entryPrice: str = ""
    positionValue: str = ""
    leverage: str = ""
    markPrice: str = ""
    liqPrice: str = ""
    unrealisedPnl: str = ""
    curRealisedPnl: str = ""
    cumRealisedPnl: str = ""
    takeProfit: str = ""
    stopLoss: str = ""
    trailingStop: str = ""
    tpslMode: str = ""
    positionStatus: str = ""
    updatedTime: str = "0"
    seq: int = 0


class BybitPositionList(msgspec.Struct, frozen=True, kw_only=True):
    """`/v5/position/list` result, one page."""

    list: builtins.list[BybitPosition]
    category: str = ""
    nextPageCursor: str = ""


class BybitWalletCoin(msgspec.Struct, frozen=True, kw_only=True):
    """One coin of the unified account (§4.12)."""

    coin: str
    equity: str = ""
    walletBalance: str = ""
    unrealisedPnl: str = ""
    cumRealisedPnl: str = ""
    totalOrderIM: str = ""
    totalPositionIM: str = ""
    totalPositionMM: str = ""


class BybitWalletAccount(msgspec.Struct, frozen=True, kw_only=True):
    """The unified account of `/v5/account/wallet-balance` or the `wallet` topic."""

    accountType: str = ""
    totalEquity: str = ""
    totalWalletBalance: str = ""
    totalMarginBalance: str = ""
    totalAvailableBalance: str = ""
    totalPerpUPL: str = ""
    totalInitialMargin: str = ""
    totalMaintenanceMargin: str = ""
    coin: list[BybitWalletCoin] = []


class BybitWalletResult(msgspec.Struct, frozen=True, kw_only=True):
    """`/v5/account/wallet-balance` result."""

    list: builtins.list[BybitWalletAccount]


class BybitFeeRate(msgspec.Struct, frozen=True, kw_only=True):
    """One `/v5/account/fee-rate` entry (§4.13)."""

    symbol: str
    takerFeeRate: str
    makerFeeRate: str


class BybitFeeRateList(msgspec.Struct, frozen=True, kw_only=True):
    """`/v5/account/fee-rate` result."""

    list: builtins.list[BybitFeeRate]


# --- WebSocket (§5, §6) -----------------------------------------------------------------------------


class BybitWsFrame(msgspec.Struct, frozen=True, kw_only=True):
    """Just enough of any frame to route it: data messages have `topic`, replies have `op`."""

    topic: str = ""
    op: str = ""
    success: bool | None = None
    ret_msg: str = ""
    req_id: str = ""
    conn_id: str = ""


class BybitWsOrderbookData(msgspec.Struct, frozen=True, kw_only=True):
    """`data` of an order-book message; size `"0"` deletes a level in a delta."""

    s: str
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    u: int
    seq: int = 0


class BybitWsOrderbook(msgspec.Struct, frozen=True, kw_only=True):
    """`orderbook.{depth}.{symbol}` message: a snapshot, then deltas with `u` + 1 (§5.3)."""

    topic: str
    type: str
    ts: int
    data: BybitWsOrderbookData
    cts: int = 0


class BybitWsTrade(msgspec.Struct, frozen=True, kw_only=True):
    """One `publicTrade` entry (§5.4)."""

    T: int
    s: str
    S: str
    v: str
    p: str
    i: str
    L: str = ""
    BT: bool = False
    seq: int = 0


class BybitWsTrades(msgspec.Struct, frozen=True, kw_only=True):
    """`publicTrade.{symbol}` message."""

    topic: str
    type: str
    ts: int
    data: list[BybitWsTrade]


class BybitWsKline(msgspec.Struct, frozen=True, kw_only=True):
    """One kline push (§5.5)."""

    start: int
    end: int
    interval: str
    open: str
    close: str
    high: str
    low: str
    volume: str
    turnover: str
    confirm: bool
    timestamp: int = 0


class BybitWsKlines(msgspec.Struct, frozen=True, kw_only=True):
    """`kline.{interval}.{symbol}` message."""

    topic: str
    type: str
    ts: int
    data: list[BybitWsKline]


class BybitWsTickerData(msgspec.Struct, frozen=True, kw_only=True):
    """A ticker snapshot, or a delta carrying only the changed fields (`None` = unchanged)."""

    symbol: str
    lastPrice: str | None = None
    markPrice: str | None = None
    indexPrice: str | None = None
    bid1Price: str | None = None
    bid1Size: str | None = None
    ask1Price: str | None = None
    ask1Size: str | None = None
    fundingRate: str | None = None
    openInterest: str | None = None
    volume24h: str | None = None
    turnover24h: str | None = None


class BybitWsTicker(msgspec.Struct, frozen=True, kw_only=True):
    """`tickers.{symbol}` message: a snapshot, then deltas to merge (§5.6)."""

    topic: str
    type: str
    ts: int
    data: BybitWsTickerData
    cs: int = 0


class BybitWsOrders(msgspec.Struct, frozen=True, kw_only=True):
    """`order` topic message (§6.4)."""

    topic: str
    data: list[BybitOrder]
    id: str = ""
    creationTime: int = 0


class BybitWsExecutions(msgspec.Struct, frozen=True, kw_only=True):
    """`execution` topic message (§6.5)."""

    topic: str
    data: list[BybitExecution]
    id: str = ""
    creationTime: int = 0


class BybitWsPositions(msgspec.Struct, frozen=True, kw_only=True):
    """`position` topic message (§6.6)."""

    topic: str
    data: list[BybitPosition]
    id: str = ""
    creationTime: int = 0


class BybitWsWallet(msgspec.Struct, frozen=True, kw_only=True):
    """`wallet` topic message (§6.7)."""

    topic: str
    data: list[BybitWalletAccount]
    id: str = ""
    creationTime: int = 0


BybitWsMessage = (
    BybitWsOrderbook
    | BybitWsTrades
    | BybitWsKlines
    | BybitWsTicker
    | BybitWsOrders
    | BybitWsExecutions
    | BybitWsPositions
    | BybitWsWallet
)
