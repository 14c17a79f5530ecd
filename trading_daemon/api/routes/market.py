"""Candles of any Bybit interval for the charts, read through the daemon's own exchange client."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.exceptions import RequestValidationError

from trading_daemon.api.deps import Daemon, Viewer
from trading_daemon.api.models import Candle5
from trading_daemon.exchange.errors import BybitError, BybitRejectedError

router = APIRouter(prefix="/api/market", tags=["market"])
Interval = Literal["1", "3", "5", "15", "30", "60", "120", "240", "D"]


@router.get("/klines/{symbol}", response_model=list[Candle5], summary="Candles, oldest first")
async def klines(
    ctx: Daemon,
    _: Viewer,
    symbol: str,
    interval: Interval = "5",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[Candle5]:
    ctx.require_symbol(symbol)
    # The venue's own candles: the daemon keeps one-minute ones only, and only for its feature windows.
    try:
        candles = await ctx.rest.get_klines(symbol, interval, limit=limit)
    except (
        BybitRejectedError
    ) as exc:  # a parameter this venue does not serve (the paper exchange: 1, 5, 15, 60)
        raise RequestValidationError(
            [{"loc": ("query", "interval"), "msg": f"the exchange refused it: {exc}", "type": "value_error"}]
        ) from exc
    except BybitError as exc:
        raise HTTPException(503, f"the exchange did not answer for {symbol} candles: {exc}") from exc
    return [
        Candle5(ts=c.start_ms, open=c.open, high=c.high, low=c.low, close=c.close, volume=c.volume,
                turnover=c.turnover)
        for c in sorted(candles, key=lambda c: c.start_ms)
    ]  # fmt: skip
