"""The admin API under ``/sim`` (not a Bybit path): faults, true books, ground truth, clock, resets.

| method | path | body / query | effect |
| --- | --- | --- | --- |
| GET | ``/sim`` | | status: exchange time, requested and achieved clock speed, lag, slip, market, symbols |
| GET | ``/sim/metrics`` | | Prometheus text: the same clock figures as gauges (``exchange_sim_speed_achieved`` …) |
| GET | ``/sim/faults`` | | current fault configuration |
| POST | ``/sim/faults`` | JSON object of fields to change | update (``request_faults``: scripted per path and count); 400 naming a bad field |
| POST | ``/sim/faults/reset`` | | back to the start configuration |
| GET | ``/sim/book`` | ``symbol``, ``depth`` (default 50) | true top levels, ``seq``, ``checksum`` |
| GET | ``/sim/ground-truth`` | | the market source's ``ground_truth()``, else ``[]`` |
| POST | ``/sim/clock/advance`` | ``{"ms": n}`` | jump exchange time forward, then run one driver step |
| POST | ``/sim/book/reset`` | ``{"symbol": s}`` | restart the symbol's depth topics at ``u`` = 1 |
| POST | ``/sim/ws/disconnect`` | ``{"scope": "public"/"private"/"all"}`` | close WebSocket connections |
| POST | ``/sim/ratelimit/reset`` | | clear rate-limit windows and IP bans |
| POST | ``/sim/mark`` | ``{"symbol": s, "price": "…"}`` | set the mark price (mark-price triggers fire) |

Replies are plain JSON (no Bybit envelope); errors are HTTP 400 with ``{"error": text}``.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from exchange_sim import wire
from exchange_sim.server.http import state_of
from exchange_sim.server.metrics import CONTENT_TYPE_LATEST


def _error(text: str) -> web.Response:
    return web.json_response({"error": text}, status=400)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    data = wire.decode_json(raw)  # the REST API's strict decoder: no NaN, bounded nesting, UTF-8 only
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


async def status(request: web.Request) -> web.Response:
    """The paper exchange's status: its clock (requested and achieved speed, lag, slip) and market.

    ``achieved_speed`` is exchange ms simulated per wall ms over the last few seconds (``null`` until
    measured); below ``requested_speed`` when the process cannot keep up, the clock slowing down
    rather than any topic being thinned.
    """
    venue = state_of(request).venue
    market = venue.market
    return web.json_response(
        {
            **venue.speed_status(),
            "market": type(market).__name__ if market is not None else None,
            "symbols": list(venue.instruments),
        }
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics of the exchange (clock speed, lag, slip)."""
    body = state_of(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_faults(request: web.Request) -> web.Response:
    """Current faults."""
    return web.json_response(state_of(request).faults.as_dict())


async def set_faults(request: web.Request) -> web.Response:
    """Change some faults."""
    try:
        state_of(request).faults.update(await _body(request))
    except ValueError as exc:
        return _error(str(exc))
    return web.json_response(state_of(request).faults.as_dict())


async def reset_faults(request: web.Request) -> web.Response:
    """Restore the start configuration."""
    state_of(request).faults.reset()
    return web.json_response(state_of(request).faults.as_dict())


async def true_book(request: web.Request) -> web.Response:
    """The true book of a symbol: top ``depth`` levels as wire strings, plus ``seq`` and ``checksum``."""
    venue = state_of(request).venue
    symbol = request.query.get("symbol", "")
    if symbol not in venue.instruments:
        return _error(f"symbol {symbol!r} is not listed (listed: {', '.join(venue.instruments)})")
    try:
        depth = int(request.query.get("depth", "50"))
    except ValueError:
        return _error(f"depth must be an integer, got {request.query.get('depth')!r}")
    if not 1 <= depth <= 10_000:
        return _error(f"depth {depth} out of range [1, 10000]")
    spec = venue.instruments[symbol]
    book = venue.engine.books[symbol]
    snap = book.snapshot(depth)
    return web.json_response(
        {
            "symbol": symbol,
            "seq": snap.seq,
            "checksum": book.checksum(depth),
            "b": [[wire.price(spec, p), wire.qty(spec, q)] for p, q in snap.bids],
            "a": [[wire.price(spec, p), wire.qty(spec, q)] for p, q in snap.asks],
            "orders": len(book),
        }
    )


async def ground_truth(request: web.Request) -> web.Response:
    """What the market source reports as manipulation ground truth, or an empty list."""
    market = state_of(request).venue.market
    source = getattr(market, "ground_truth", None)
    records = list(source()) if callable(source) else []
    return web.json_response(records, dumps=lambda obj: json.dumps(obj, default=str))


async def advance_clock(request: web.Request) -> web.Response:
    """Jump the exchange clock and run one driver step (funding, candles, market) at the new time."""
    venue = state_of(request).venue
    try:
        ms = (await _body(request)).get("ms")
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
            raise ValueError(f"ms must be a non-negative integer, got {ms!r}")
    except ValueError as exc:
        return _error(str(exc))
    now = venue.clock.jump(ms)
    venue.step(now)
    return web.json_response({"time": now})


async def reset_book_topics(request: web.Request) -> web.Response:
    """Restart a symbol's orderbook topics at ``u`` = 1 (each subscriber gets a fresh snapshot)."""
    state = state_of(request)
    try:
        symbol = (await _body(request)).get("symbol")
    except ValueError as exc:
        return _error(str(exc))
    if symbol not in state.venue.instruments:
        return _error(f"symbol {symbol!r} is not listed")
    state.public.feed.reset(symbol)
    return web.json_response({"symbol": symbol, "u": 1})


async def disconnect(request: web.Request) -> web.Response:
    """Close public, private or all WebSocket connections now."""
    state = state_of(request)
    try:
        scope = (await _body(request)).get("scope", "all")
    except ValueError as exc:
        return _error(str(exc))
    if scope not in ("public", "private", "all"):
        return _error(f"scope must be public, private or all, got {scope!r}")
    closed = 0
    if scope in ("public", "all"):
        closed += state.public.disconnect_all()
    if scope in ("private", "all"):
        closed += state.private.disconnect_all()
    return web.json_response({"closed": closed})


async def reset_rate_limits(request: web.Request) -> web.Response:
    """Clear rate-limit windows and IP bans."""
    state_of(request).limiter.reset()
    return web.json_response({"ok": True})


async def set_mark(request: web.Request) -> web.Response:
    """Set a symbol's mark price."""
    venue = state_of(request).venue
    try:
        body = await _body(request)
        price = Decimal(str(body.get("price")))
        symbol = body.get("symbol")
        if symbol not in venue.instruments:
            raise ValueError(f"symbol {symbol!r} is not listed")
        venue.set_mark_price(symbol, price)
    except (ValueError, InvalidOperation) as exc:
        return _error(f"mark needs a listed symbol and a positive decimal price: {exc}")
    return web.json_response({"symbol": symbol, "markPrice": str(price)})


def register(app: web.Application) -> None:
    """Add the ``/sim`` routes."""
    app.router.add_get("/sim", status)
    app.router.add_get("/sim/metrics", metrics)
    app.router.add_get("/sim/faults", get_faults)
    app.router.add_post("/sim/faults", set_faults)
    app.router.add_post("/sim/faults/reset", reset_faults)
    app.router.add_get("/sim/book", true_book)
    app.router.add_get("/sim/ground-truth", ground_truth)
    app.router.add_post("/sim/clock/advance", advance_clock)
    app.router.add_post("/sim/book/reset", reset_book_topics)
    app.router.add_post("/sim/ws/disconnect", disconnect)
    app.router.add_post("/sim/ratelimit/reset", reset_rate_limits)
    app.router.add_post("/sim/mark", set_mark)
