"""One router per area of the API; `trading_daemon.api.app` mounts every router of `ROUTERS`."""

from __future__ import annotations

from fastapi import APIRouter

from trading_daemon.api.routes import (
    auth,
    bot,
    data,
    detection,
    health,
    market,
    ml,
    monitoring,
    strategies,
    trading,
    ws,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    auth.router,
    bot.router,
    data.router,
    trading.router,
    market.router,
    ml.router,
    detection.router,
    strategies.router,
    monitoring.router,
    ws.router,
)
