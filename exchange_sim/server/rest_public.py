"""Public market REST endpoints (docs/exchange_protocol.md §3): time, instruments, orderbook, kline, tickers, trades."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exchange_sim import wire
from exchange_sim.instruments import get_instrument
from exchange_sim.klines import INTERVALS
from exchange_sim.server.book_feed import BookFeed
from exchange_sim.server.http import Params, paginate, params_error
from exchange_sim.server.market_data import instrument_object, ticker_object
from exchange_sim.venue import Venue


def market_time(venue: Venue, params: Params) -> dict[str, Any]:
    """``GET /v5/market/time``."""
    now = venue.clock.now()
    return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}


def instruments_info(venue: Venue, params: Params) -> dict[str, Any]:
    """``GET /v5/market/instruments-info``; other categories answer an empty list (ccxt asks for them)."""
    category = params.text("category", required=True)
    linear = params.category_or_empty()
    symbol = params.text("symbol")
    status = params.text("status")
    base = params.text("baseCoin")
    limit = params.integer("limit", 500, 1, 1000)
    specs = list(venue.instruments.values()) if linear else []
    if symbol is not None:
        specs = [s for s in specs if s.symbol == symbol]
    if status is not None and status != "Trading":
        specs = []
    if base is not None:
        specs = [s for s in specs if s.base_coin == base]
    launch = venue.config.start_ms or 0
    page, cursor = paginate([instrument_object(s, launch) for s in specs], limit, params.text("cursor"))
    return {"category": category, "list": page, "nextPageCursor": cursor}


def orderbook(venue: Venue, params: Params, feed: BookFeed) -> dict[str, Any]:
    """``GET /v5/market/orderbook``: the book as last published on ``orderbook.1000``, with that ``u``.

    Serving the published state rather than the live book keeps ``u`` and the levels consistent, so a
    client can seed the 1000-level stream from this reply (docs/exchange_protocol.md §3.3).
    """
    params.linear()
    spec = get_instrument(params.text("symbol", required=True), venue.instruments)
    limit = params.integer("limit", 25, 1, 1000)
    data = feed.snapshot_data(spec.symbol, 1000, limit)
    now = venue.clock.now()
    return {
        "s": data["s"],
        "b": data["b"],
        "a": data["a"],
        "ts": now,
        "u": data["u"],
        "seq": data["seq"],
        "cts": now,
    }


def kline(venue: Venue, params: Params) -> dict[str, Any]:
    """``GET /v5/market/kline``: rows ``[start, open, high, low, close, volume, turnover]``, newest first."""
    params.linear(required=False)
    spec = get_instrument(params.text("symbol", required=True), venue.instruments)
    interval = params.text("interval", required=True)
    if interval not in INTERVALS:
        raise params_error(f"interval {interval!r} is not served (one of {', '.join(INTERVALS)})")
    start = params.integer("start", -1, 0)
    end = params.integer("end", -1, 0)
    limit = params.integer("limit", 200, 1, 1000)
    rows = venue.klines[spec.symbol].history(
        interval, start if start >= 0 else None, end if end >= 0 else None, limit
    )
    return {
        "category": "linear",
        "symbol": spec.symbol,
        "list": [
            [
                str(c.start),
                wire.price(spec, c.open),
                wire.price(spec, c.high),
                wire.price(spec, c.low),
                wire.price(spec, c.close),
                wire.qty(spec, c.volume),
                wire.num(c.turnover),
            ]
            for c in rows
        ],
    }


def tickers(venue: Venue, params: Params) -> dict[str, Any]:
    """``GET /v5/market/tickers``."""
    params.linear()
    symbol = params.text("symbol")
    symbols = [get_instrument(symbol, venue.instruments).symbol] if symbol else list(venue.instruments)
    return {"category": "linear", "list": [ticker_object(venue, s) for s in symbols]}


def recent_trade(venue: Venue, params: Params) -> dict[str, Any]:
    """``GET /v5/market/recent-trade``, newest first."""
    params.linear()
    spec = get_instrument(params.text("symbol", required=True), venue.instruments)
    limit = params.integer("limit", 500, 1, 1000)
    trades = list(venue.recent_trades[spec.symbol])[-limit:]
    return {"category": "linear", "list": [wire.recent_trade_object(spec, t) for t in reversed(trades)]}


def register(app: web.Application, handler: Any) -> None:
    """Add the public routes; ``handler(fn)`` wraps a ``fn(venue, params)`` into an aiohttp handler."""
    app.router.add_get("/v5/market/time", handler(market_time))
    app.router.add_get("/v5/market/instruments-info", handler(instruments_info))
    app.router.add_get("/v5/market/kline", handler(kline))
    app.router.add_get("/v5/market/tickers", handler(tickers))
    app.router.add_get("/v5/market/recent-trade", handler(recent_trade))
