"""Private REST endpoints (docs/exchange_protocol.md §4): orders, executions, positions, leverage, wallet, account.

Each endpoint is ``fn(venue, api_key, params) -> (result, messages)``: the ``result`` object of the
envelope and the private stream messages the call caused, which the server publishes after (or, with
the delayed-ack fault, before) the reply. Authentication and rate limits are checked before, in
:mod:`exchange_sim.server.app`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exchange_sim import wire
from exchange_sim.errors import ExchangeError, RetCode
from exchange_sim.events import OPEN_STATUSES, STOP_ORDER, TRIGGER_BY, Execution, Order
from exchange_sim.instruments import get_instrument
from exchange_sim.matching import OrderRequest
from exchange_sim.server.http import Params, paginate, params_error
from exchange_sim.tpsl import ORDER_FILTERS, TPSL_ORDER_TYPES, TpslSpec, TradingStopRequest, matches_filter
from exchange_sim.venue import PrivateMessage, Venue

Outcome = tuple[dict[str, Any], list[PrivateMessage]]
Endpoint = Callable[[Venue, str, Params], Outcome]

WEEK_MS = 7 * 86_400_000
# Bybit features the paper exchange does not model (docs/exchange_protocol.md §9.1): refused by name.
_UNSUPPORTED_ORDER_FIELDS = ("bboSideType", "bboLevel", "trailingStop", "activePrice")


def _refuse_unsupported(params: Params) -> None:
    for name in _UNSUPPORTED_ORDER_FIELDS:
        value = params.data.get(name)
        if value not in (None, "", "0", 0):
            raise params_error(f"{name} is not supported by the paper exchange")


def _tpsl(params: Params) -> TpslSpec:
    """The TP/SL fields of a create, amend or trading-stop request (docs/exchange_protocol.md §4.15)."""
    return TpslSpec(
        take_profit=params.decimal("takeProfit"),
        stop_loss=params.decimal("stopLoss"),
        tp_trigger_by=params.text("tpTriggerBy", choices=TRIGGER_BY),
        sl_trigger_by=params.text("slTriggerBy", choices=TRIGGER_BY),
        tpsl_mode=params.text("tpslMode", choices=("Full", "Partial")),
        tp_order_type=params.text("tpOrderType", choices=TPSL_ORDER_TYPES),
        sl_order_type=params.text("slOrderType", choices=TPSL_ORDER_TYPES),
        tp_limit_price=params.decimal("tpLimitPrice"),
        sl_limit_price=params.decimal("slLimitPrice"),
    )


def _order_filter(params: Params) -> str | None:
    return params.text("orderFilter", choices=ORDER_FILTERS)


def _ids(params: Params) -> tuple[str | None, str | None]:
    return params.text("orderId"), params.text("orderLinkId")


def _symbols_for(venue: Venue, params: Params, *, required: bool) -> list[str]:
    """The symbols selected by ``symbol`` > ``baseCoin`` > ``settleCoin`` (§4.4 priority)."""
    symbol = params.text("symbol")
    if symbol is not None:
        return [get_instrument(symbol, venue.instruments).symbol]
    base = params.text("baseCoin")
    if base is not None:
        return [s for s, spec in venue.instruments.items() if spec.base_coin == base]
    settle = params.text("settleCoin")
    if settle is not None:
        return list(venue.instruments) if settle == "USDT" else []
    if required:
        raise params_error("symbol, baseCoin or settleCoin is required")
    return list(venue.instruments)


def create_order(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``POST /v5/order/create``."""
    params.linear()
    spec = get_instrument(params.text("symbol", required=True), venue.instruments)
    side = params.text("side", required=True)
    order_type = params.text("orderType", required=True)
    if side not in ("Buy", "Sell"):
        raise params_error(f"side invalid: {side!r} (Buy or Sell)")
    if order_type not in ("Limit", "Market"):
        raise params_error(f"orderType invalid: {order_type!r} (Limit or Market)")
    qty = params.decimal("qty", required=True)
    assert qty is not None
    _refuse_unsupported(params)
    smp = params.text("smpType")
    if smp not in (None, "None"):
        raise params_error(f"smpType {smp!r} is not supported by the paper exchange (None only)")
    reduce_only = params.flag("reduceOnly")
    close_on_trigger = params.flag("closeOnTrigger")
    if qty == 0 and reduce_only and close_on_trigger:
        # qty "0" + reduceOnly + closeOnTrigger closes the whole position, up to the max order qty (§4.1).
        side_reducible = venue.account(api_key).reducible_qty(spec.symbol, side)
        if not side_reducible:
            raise ExchangeError(RetCode.REDUCE_ONLY_NOT_SATISFIED, "Reduce-only rule not satisfied")
        limit = spec.max_mkt_order_qty if order_type == "Market" else spec.max_order_qty
        qty = min(side_reducible, limit)
    trigger_price = params.decimal("triggerPrice")
    req = OrderRequest(
        symbol=spec.symbol,
        side=side,
        order_type=order_type,
        qty=qty,
        price=params.decimal("price"),
        time_in_force=params.text("timeInForce") or "GTC",
        reduce_only=reduce_only or close_on_trigger,
        order_link_id=params.text("orderLinkId") or "",
        position_idx=params.integer("positionIdx", 0),
        slippage_tolerance_type=params.text("slippageToleranceType"),
        slippage_tolerance=params.decimal("slippageTolerance"),
        close_on_trigger=close_on_trigger,
        trigger_price=trigger_price if trigger_price else None,
        trigger_direction=params.integer("triggerDirection", 0),
        trigger_by=params.text("triggerBy", choices=TRIGGER_BY),
        tpsl=_tpsl(params),
    )
    result, messages = venue.create_order(api_key, req)
    assert result.order is not None
    return {"orderId": result.order.order_id, "orderLinkId": result.order.order_link_id}, messages


def amend_order(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``POST /v5/order/amend``."""
    params.linear()
    symbol = get_instrument(params.text("symbol", required=True), venue.instruments).symbol
    _refuse_unsupported(params)
    order_id, link_id = _ids(params)
    result, messages = venue.amend_order(
        api_key,
        symbol,
        order_id=order_id,
        order_link_id=link_id,
        qty=params.decimal("qty"),
        price=params.decimal("price"),
        trigger_price=params.decimal("triggerPrice"),
        trigger_by=params.text("triggerBy", choices=TRIGGER_BY),
        tpsl=_tpsl(params),
    )
    order = result.order if result.order is not None else result.order_updates[-1]
    return {"orderId": order.order_id, "orderLinkId": order.order_link_id}, messages


def cancel_order(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``POST /v5/order/cancel``."""
    params.linear()
    symbol = get_instrument(params.text("symbol", required=True), venue.instruments).symbol
    order_id, link_id = _ids(params)
    result, messages = venue.cancel_order(api_key, symbol, order_id=order_id, order_link_id=link_id)
    assert result.order is not None
    return {"orderId": result.order.order_id, "orderLinkId": result.order.order_link_id}, messages


def cancel_all(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``POST /v5/order/cancel-all`` (``symbol`` > ``baseCoin`` > ``settleCoin``), optionally one
    ``orderFilter`` (and ``stopOrderType`` Stop with StopOrder)."""
    params.linear()
    symbols = _symbols_for(venue, params, required=True)
    order_filter = _order_filter(params)
    stop_order_type = params.text("stopOrderType", choices=(STOP_ORDER,))
    if stop_order_type is not None and order_filter != "StopOrder":
        raise params_error("stopOrderType Stop is only valid with orderFilter StopOrder")
    cancelled: list[dict[str, str]] = []
    messages: list[PrivateMessage] = []
    for symbol in symbols:
        result, msgs = venue.cancel_all(api_key, symbol, order_filter, stop_order_type)
        cancelled += [{"orderId": o.order_id, "orderLinkId": o.order_link_id} for o in result.order_updates]
        messages += msgs
    return {"list": cancelled, "success": "1"}, messages


def _order_rows(venue: Venue, orders: list[Order]) -> list[dict[str, Any]]:
    return [wire.order_object(venue.instruments[o.symbol], o) for o in orders]


def order_realtime(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``GET /v5/order/realtime``: open orders, or recent closed ones (``openOnly=1``), or by id."""
    params.linear()
    order_id, link_id = _ids(params)
    open_only = params.integer("openOnly", 0, 0, 2)
    order_filter = _order_filter(params)
    limit = params.integer("limit", 20, 1, 50)
    store = venue.orders[api_key]
    if order_id or link_id:
        if order_id:
            found = store.get(order_id)
        else:
            found = next((o for o in reversed(store.values()) if o.order_link_id == link_id), None)
        orders = [found] if found is not None else []
    else:
        symbols = set(_symbols_for(venue, params, required=True))
        if open_only == 0:
            orders = [o for o in store.values() if o.order_status in OPEN_STATUSES and o.symbol in symbols]
        else:
            closed = [o for o in store.values() if o.order_status not in OPEN_STATUSES]
            orders = [o for o in closed[-500:] if o.symbol in symbols]
        orders = [o for o in orders if matches_filter(o, order_filter)]
    orders.sort(key=lambda o: o.created_time, reverse=True)
    page, cursor = paginate(orders, limit, params.text("cursor"))
    return {"category": "linear", "nextPageCursor": cursor, "list": _order_rows(venue, page)}, []


def _time_window(params: Params, now: int) -> tuple[int, int]:
    start = params.integer("startTime", -1, 0)
    end = params.integer("endTime", -1, 0)
    if start < 0 and end < 0:
        return now - WEEK_MS, now
    if start < 0:
        start = end - WEEK_MS
    if end < 0:
        end = start + WEEK_MS
    if end < start:
        raise params_error(f"endTime {end} is before startTime {start}")
    if end - start > WEEK_MS:
        raise params_error("the startTime-endTime window must not exceed 7 days")
    return start, end


def order_history(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``GET /v5/order/history``: closed orders of the last 7 days (or the given window)."""
    params.linear()
    order_id, link_id = _ids(params)
    status = params.text("orderStatus")
    order_filter = _order_filter(params)
    limit = params.integer("limit", 20, 1, 50)
    symbols = set(_symbols_for(venue, params, required=False))
    start, end = _time_window(params, venue.clock.now())
    orders = [
        o
        for o in venue.orders[api_key].values()
        if o.order_status not in OPEN_STATUSES
        and o.symbol in symbols
        and (order_id is None or o.order_id == order_id)
        and (link_id is None or o.order_link_id == link_id)
        and (status is None or o.order_status == status)
        and matches_filter(o, order_filter)
        and start <= o.created_time <= end
    ]
    orders.sort(key=lambda o: o.created_time, reverse=True)
    page, cursor = paginate(orders, limit, params.text("cursor"))
    return {"category": "linear", "nextPageCursor": cursor, "list": _order_rows(venue, page)}, []


def execution_list(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``GET /v5/execution/list``, newest first; ``orderId``/``orderLinkId`` override the other filters."""
    params.linear()
    order_id, link_id = _ids(params)
    exec_type = params.text("execType")
    limit = params.integer("limit", 50, 1, 100)
    records: list[Execution] = list(venue.executions[api_key])
    if order_id or link_id:
        records = [e for e in records if (e.order_id == order_id if order_id else e.order_link_id == link_id)]
    else:
        symbols = set(_symbols_for(venue, params, required=False))
        start, end = _time_window(params, venue.clock.now())
        records = [
            e
            for e in records
            if e.symbol in symbols
            and start <= e.exec_time <= end
            and (exec_type is None or e.exec_type == exec_type)
        ]
    records.reverse()  # stored oldest first; a stable sort keeps later records first within one execTime
    records.sort(key=lambda e: e.exec_time, reverse=True)
    page, cursor = paginate(records, limit, params.text("cursor"))
    rows = [wire.execution_object(venue.instruments[e.symbol], e) for e in page]
    return {"category": "linear", "nextPageCursor": cursor, "list": rows}, []


def position_list(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``GET /v5/position/list``: one symbol (even flat), or every non-zero position of ``settleCoin``."""
    params.linear()
    account = venue.account(api_key)
    symbol = params.text("symbol")
    settle = params.text("settleCoin")
    limit = params.integer("limit", 20, 1, 200)
    if symbol is not None:
        positions = [account.position(get_instrument(symbol, venue.instruments).symbol)]
    elif settle is not None:
        positions = [p for p in account.positions.values() if p.qty and settle == "USDT"]
    else:
        raise params_error("symbol or settleCoin is required")
    page, cursor = paginate(positions, limit, params.text("cursor"))
    rows = [
        wire.position_object(venue.instruments[p.symbol], account, p, venue.accounts.marks.get(p.symbol))
        for p in page
    ]
    return {"category": "linear", "nextPageCursor": cursor, "list": rows}, []


def set_leverage(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``POST /v5/position/set-leverage`` (equal buy and sell leverage in one-way mode)."""
    params.linear()
    symbol = get_instrument(params.text("symbol", required=True), venue.instruments).symbol
    buy = params.decimal("buyLeverage", required=True)
    sell = params.decimal("sellLeverage", required=True)
    assert buy is not None and sell is not None
    return {}, venue.set_leverage(api_key, symbol, buy, sell)


def trading_stop(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``POST /v5/position/trading-stop``: the position's TP/SL (Full) or a Partial TP/SL pair."""
    params.linear()
    symbol = get_instrument(params.text("symbol", required=True), venue.instruments).symbol
    _refuse_unsupported(params)
    req = TradingStopRequest(
        symbol=symbol,
        tpsl=_tpsl(params),
        position_idx=params.integer("positionIdx", 0),
        tp_size=params.decimal("tpSize"),
        sl_size=params.decimal("slSize"),
    )
    _, messages = venue.trading_stop(api_key, req)
    return {}, messages


def wallet_balance(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``GET /v5/account/wallet-balance`` (UNIFIED; the only coin is USDT)."""
    account_type = params.text("accountType", required=True)
    if account_type != "UNIFIED":
        raise params_error(f"accountType {account_type!r} is not supported (UNIFIED only)")
    item = wire.wallet_object(venue.account(api_key))
    coins = params.text("coin")
    if coins is not None and "USDT" not in coins.split(","):
        item["coin"] = []
    return {"list": [item]}, []


def fee_rate(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``GET /v5/account/fee-rate``."""
    params.linear()
    account = venue.account(api_key)
    symbol = params.text("symbol")
    symbols = [get_instrument(symbol, venue.instruments).symbol] if symbol else list(venue.instruments)
    rows = [
        {
            "symbol": s,
            "takerFeeRate": wire.num(account.taker_fee_rate),
            "makerFeeRate": wire.num(account.maker_fee_rate),
        }
        for s in symbols
    ]
    return {"list": rows}, []


def query_api(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``GET /v5/user/query-api``: the key's permissions (a read-write UTA key, no IP whitelist)."""
    uid = 100_000 + sorted(venue.secrets).index(api_key)
    return {
        "id": str(uid),
        "note": "paper exchange",
        "apiKey": api_key,
        "readOnly": 0,
        "secret": "",
        "permissions": {
            "ContractTrade": ["Order", "Position"],
            "Spot": [],
            "Wallet": ["AccountTransfer"],
            "Options": [],
            "Derivatives": [],
            "CopyTrading": [],
            "BlockTrade": [],
            "Exchange": [],
            "NFT": [],
            "Affiliate": [],
            "Earn": [],
        },
        "ips": ["*"],
        "type": 1,
        "deadlineDay": -1,
        "expiredAt": "",
        "createdAt": "2026-01-01T00:00:00Z",
        "unified": 0,
        "uta": 1,
        "userID": uid,
        "inviterID": 0,
        "vipLevel": "No VIP",
        "mktMakerLevel": "0",
        "affiliateID": 0,
        "rsaPublicKey": "",
        "isMaster": True,
        "parentUid": "0",
        "kycLevel": "LEVEL_DEFAULT",
        "kycRegion": "",
    }, []


def account_info(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``GET /v5/account/info``: a unified account in regular (cross) margin."""
    return {
        "unifiedMarginStatus": 4,
        "marginMode": "REGULAR_MARGIN",
        "isMasterTrader": False,
        "spotHedgingStatus": "OFF",
        "updatedTime": str(venue.clock.now()),
        "dcpStatus": "OFF",
        "timeWindow": 10,
        "smpGroup": 0,
    }, []


def coin_info(venue: Venue, api_key: str, params: Params) -> Outcome:
    """``GET /v5/asset/coin/query-info``: the one coin of this exchange, USDT (ccxt asks at start-up)."""
    coin = params.text("coin")
    rows = (
        []
        if coin not in (None, "USDT")
        else [{"name": "USDT", "coin": "USDT", "remainAmount": "5000000", "chains": []}]
    )
    return {"rows": rows}, []


# path → (method, endpoint, is an order write subject to the delayed-ack fault)
ROUTES: dict[str, tuple[str, Endpoint, bool]] = {
    "/v5/order/create": ("POST", create_order, True),
    "/v5/order/amend": ("POST", amend_order, True),
    "/v5/order/cancel": ("POST", cancel_order, True),
    "/v5/order/cancel-all": ("POST", cancel_all, True),
    "/v5/order/realtime": ("GET", order_realtime, False),
    "/v5/order/history": ("GET", order_history, False),
    "/v5/execution/list": ("GET", execution_list, False),
    "/v5/position/list": ("GET", position_list, False),
    "/v5/position/set-leverage": ("POST", set_leverage, False),
    "/v5/position/trading-stop": ("POST", trading_stop, True),
    "/v5/account/wallet-balance": ("GET", wallet_balance, False),
    "/v5/account/fee-rate": ("GET", fee_rate, False),
    "/v5/account/info": ("GET", account_info, False),
    "/v5/user/query-api": ("GET", query_api, False),
    "/v5/asset/coin/query-info": ("GET", coin_info, False),
}
