"""Market data the daemon holds live: the pairs, each order book, the screener's metrics."""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, HTTPException, Query

from trading_daemon.api.context import DaemonContext
from trading_daemon.api.deps import Daemon, Viewer
from trading_daemon.api.models import OrderBook, Pair, SymbolMetrics

router = APIRouter(prefix="/api/data", tags=["data"])


@router.get(
    "/pairs", response_model=list[Pair], summary="The pairs the daemon streams, with their last prices"
)
async def pairs(ctx: Daemon, _: Viewer) -> list[Pair]:
    out = []
    for symbol in ctx.symbols:
        analysis = ctx.analyzer.latest(symbol)
        book = ctx.feed.builders[symbol].book
        out.append(
            Pair(
                symbol=symbol,
                last_price=analysis.last_price if analysis is not None else None,
                mid=book.mid(),
                spread_bps=analysis.spread_bps if analysis is not None else None,
                change_24h_pct=analysis.change_24h_pct if analysis is not None else None,
                volume_24h=analysis.volume_24h if analysis is not None else None,
                turnover_24h=analysis.turnover_24h if analysis is not None else None,
                book_valid=book.valid,
                rows=ctx.feed.stats.by_symbol_rows.get(symbol, 0),
            )
        )
    return out


@router.get("/orderbook/{symbol}", response_model=OrderBook, summary="The live order book of a pair")
async def orderbook(
    ctx: Daemon, _: Viewer, symbol: str, depth: Annotated[int, Query(ge=1, le=50)] = 20
) -> OrderBook:
    book = ctx.feed.builders[ctx.require_symbol(symbol)].book
    bids, asks = book.top(depth)
    mid = book.mid()
    bid, ask = book.best_bid(), book.best_ask()
    spread_bps = (ask[0] - bid[0]) / mid * 1e4 if bid is not None and ask is not None and mid else None
    return OrderBook(
        symbol=symbol,
        valid=book.valid,
        ts=book.last_ts,
        update_id=book.last_u,
        bids=[[float(p), float(q)] for p, q, *_ in bids],
        asks=[[float(p), float(q)] for p, q, *_ in asks],
        mid=mid,
        spread_bps=spread_bps,
        depth=list(book.depth()),
    )


def _metrics(ctx: DaemonContext, symbol: str) -> SymbolMetrics | None:
    analysis = ctx.analyzer.latest(symbol)
    if analysis is None:
        return None
    return SymbolMetrics.model_validate(msgspec.to_builtins(analysis))


@router.get(
    "/metrics", response_model=dict[str, SymbolMetrics], summary="The screener's metrics of every pair"
)
async def all_metrics(ctx: Daemon, _: Viewer) -> dict[str, SymbolMetrics]:
    return {s: m for s in ctx.symbols if (m := _metrics(ctx, s)) is not None}


@router.get("/metrics/{symbol}", response_model=SymbolMetrics, summary="The screener's metrics of one pair")
async def symbol_metrics(ctx: Daemon, _: Viewer, symbol: str) -> SymbolMetrics:
    metrics = _metrics(ctx, ctx.require_symbol(symbol))
    if metrics is None:
        raise HTTPException(409, f"no analysis of {symbol} yet: the first snapshot row has not arrived")
    return metrics
