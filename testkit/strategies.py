"""Crafted inputs for the analyzer and strategy tests: book rows, candle paths, analyses, positions."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec

from infra.settings import AnalyzerConfig, StrategyConfig, code_defaults
from schemas.enums import PositionStatus, Side
from schemas.market import CANDLE_INTERVAL_MS, Candle
from schemas.snapshot import NO_CANDLE_PIN, RawSnapshotRow, pad_levels
from schemas.trading import Position
from testkit.rows import T0_MS
from trading_daemon.analysis import MarketAnalysis, MarketAnalyzer

Levels = Sequence[tuple[float, float]]  # (price, size), best first


def analyzer_config(symbols: Sequence[str] = ("BTCUSDT",), **changes: Any) -> AnalyzerConfig:
    return dataclasses.replace(code_defaults().analyzer, symbols=tuple(symbols), **changes)


def strategy_config(**changes: Any) -> StrategyConfig:
    """The default strategy settings with `changes` (StrategyConfig fields) applied."""
    return dataclasses.replace(code_defaults().strategies, **changes)


def book_row(
    bids: Levels,
    asks: Levels,
    *,
    symbol: str = "BTCUSDT",
    ts: int = T0_MS,
    pin: int = NO_CANDLE_PIN,
    book_reset: bool = False,
    buys: Sequence[tuple[float, float]] = (),  # taker-buy trades (price, size) in the interval
    sells: Sequence[tuple[float, float]] = (),
    last_trade_price: float = 0.0,
    interval_ms: int = 1000,
) -> RawSnapshotRow:
    """A raw snapshot row holding exactly this book and these trades (other aggregates 0)."""
    trades = [*buys, *sells]
    return RawSnapshotRow(
        symbol=symbol,
        ts=ts,
        interval_ms=interval_ms,
        book_reset=book_reset,
        n_bid_levels=len(bids),
        n_ask_levels=len(asks),
        bid_prices=pad_levels([p for p, _ in bids]),
        bid_sizes=pad_levels([q for _, q in bids]),
        ask_prices=pad_levels([p for p, _ in asks]),
        ask_sizes=pad_levels([q for _, q in asks]),
        last_candle_start_ms=pin,
        n_book_msgs=0,
        n_bbo_changes=0,
        bid_inserts=0,
        bid_updates=0,
        bid_deletes=0,
        ask_inserts=0,
        ask_updates=0,
        ask_deletes=0,
        ttl_count=0,
        ttl_sum_s=0.0,
        ttl_sumsq_s2=0.0,
        n_buy_trades=len(buys),
        n_sell_trades=len(sells),
        buy_volume=sum(q for _, q in buys),
        sell_volume=sum(q for _, q in sells),
        buy_notional=sum(p * q for p, q in buys),
        sell_notional=sum(p * q for p, q in sells),
        eff_spread_wsum=0.0,
        eff_spread_volume=0.0,
        last_trade_price=trades[-1][0] if trades else last_trade_price,
        late_messages=0,
    )


def analysis_of(
    bids: Levels,
    asks: Levels,
    *,
    symbol: str = "BTCUSDT",
    ts: int = T0_MS,
    min_cluster_volume: float = 10_000.0,
    candles: Sequence[Candle] = (),
) -> MarketAnalysis:
    """The analyzer's view of one row with this book (and these closed candles, the newest pinned)."""
    analyzer = MarketAnalyzer(analyzer_config((symbol,), min_cluster_volume=min_cluster_volume))
    analyzer.submit_candles(candles)
    pin = candles[-1].start_ms if candles else NO_CANDLE_PIN
    analyzer.submit_rows([book_row(bids, asks, symbol=symbol, ts=ts, pin=pin)])
    analysis = analyzer.latest(symbol)
    assert analysis is not None
    return analysis


def quote(
    bid: float, ask: float, *, symbol: str = "BTCUSDT", ts: int = T0_MS, size: float = 1.0, **changes: Any
) -> MarketAnalysis:
    """The analysis of a balanced one-level book bid/ask (then `changes`, MarketAnalysis fields, applied)."""
    analysis = analysis_of([(bid, size)], [(ask, size)], symbol=symbol, ts=ts)
    return msgspec.structs.replace(analysis, **changes) if changes else analysis


def candle_path(
    closes: Sequence[float],
    *,
    symbol: str = "BTCUSDT",
    start_ms: int = T0_MS,
    first_open: float | None = None,
    wick: float = 0.05,
    volumes: Sequence[float] | None = None,
) -> list[Candle]:
    """One-minute candles with these closes, each opening at the previous close, high and low `wick`
    beyond the body, `volumes` (default 10 each)."""
    out: list[Candle] = []
    prev = closes[0] if first_open is None else first_open
    for i, close in enumerate(closes):
        volume = 10.0 if volumes is None else volumes[i]
        high, low = max(prev, close) + wick, min(prev, close) - wick
        out.append(
            Candle(
                symbol=symbol,
                start_ms=start_ms + i * CANDLE_INTERVAL_MS,
                open=prev,
                high=high,
                low=low,
                close=close,
                volume=volume,
                turnover=volume * (high + low) / 2,
            )
        )
        prev = close
    return out


def ohlc_candles(
    bars: Sequence[tuple[float, float, float, float, float]],
    *,
    symbol: str = "BTCUSDT",
    start_ms: int = T0_MS,
) -> list[Candle]:
    """Candles from (open, high, low, close, volume) tuples, one minute apart."""
    return [
        Candle(
            symbol=symbol,
            start_ms=start_ms + i * CANDLE_INTERVAL_MS,
            open=o,
            high=h,
            low=lo,
            close=c,
            volume=v,
            turnover=v * (h + lo) / 2,
        )
        for i, (o, h, lo, c, v) in enumerate(bars)
    ]


def position(
    side: Side,
    entry: float,
    *,
    symbol: str = "BTCUSDT",
    opened_ms: int = T0_MS,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    signal_data: dict[str, Any] | None = None,
) -> Position:
    """An open position of 1 unit."""
    return Position(
        symbol=symbol,
        side=side,
        quantity=Decimal(1),
        entry_price=Decimal(repr(entry)),
        status=PositionStatus.OPEN,
        stop_loss=None if stop_loss is None else Decimal(repr(stop_loss)),
        take_profit=None if take_profit is None else Decimal(repr(take_profit)),
        signal_data=signal_data,
        opened_ms=opened_ms,
    )
