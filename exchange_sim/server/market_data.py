"""Ticker and instrument objects built from the venue's state (docs/exchange_protocol.md §3.2, §3.5, §5.6)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from exchange_sim import wire
from exchange_sim.events import ZERO
from exchange_sim.instruments import Instrument
from exchange_sim.venue import Venue

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
_SYMBOL_IDS = {"BTCUSDT": 5, "ETHUSDT": 6, "SOLUSDT": 9}


def instrument_object(spec: Instrument, launch_ms: int) -> dict[str, Any]:
    """One ``instruments-info`` entry for a linear perpetual."""
    max_qty = wire.qty(spec, spec.max_order_qty)
    return {
        "symbol": spec.symbol,
        "symbolId": _SYMBOL_IDS.get(spec.symbol, 0),
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": spec.base_coin,
        "quoteCoin": spec.quote_coin,
        "settleCoin": spec.quote_coin,
        "launchTime": str(launch_ms),
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(spec.price_scale),
        "leverageFilter": {
            "minLeverage": wire.num(spec.min_leverage),
            "maxLeverage": str(spec.max_leverage),
            "leverageStep": str(spec.leverage_step),
        },
        "priceFilter": {
            "minPrice": str(spec.min_price),
            "maxPrice": str(spec.max_price),
            "tickSize": str(spec.tick_size),
        },
        "lotSizeFilter": {
            "maxOrderQty": max_qty,
            "minOrderQty": wire.qty(spec, spec.min_order_qty),
            "qtyStep": str(spec.qty_step),
            "postOnlyMaxOrderQty": max_qty,
            "maxMktOrderQty": wire.qty(spec, spec.max_mkt_order_qty),
            "minNotionalValue": wire.num(spec.min_notional_value),
        },
        "unifiedMarginTrade": True,
        "fundingInterval": spec.funding_interval_minutes,
        "copyTrading": "both",
        "upperFundingRate": str(spec.upper_funding_rate),
        "lowerFundingRate": str(spec.lower_funding_rate),
        "isPreListing": False,
        "preListingInfo": None,
        "riskParameters": {
            "priceLimitRatioX": wire.num(spec.price_limit_ratio / 2),
            "priceLimitRatioY": wire.num(spec.price_limit_ratio),
        },
        "symbolType": "",
        "displayName": "",
    }


def ticker_object(venue: Venue, symbol: str) -> dict[str, str]:
    """The linear ticker of ``symbol`` (all strings), as ``/v5/market/tickers`` and ``tickers`` send it.

    Last price and tick direction come from the last public trade, 24 h and 1 h figures from the
    1-minute candles, best bid/ask from the book. Open interest is the accounts' long size: the
    synthetic market participants hold no positions. The index price equals the mark price.
    """
    spec = venue.instruments[symbol]
    now = venue.clock.now()
    trades = venue.recent_trades[symbol]
    last = trades[-1] if trades else None
    last_price = last.price if last is not None else None
    mark = venue.engine.reference_price(symbol)
    day = venue.klines[symbol].window(now - DAY_MS)
    prev24 = day[0].open if day else None
    hour = [c for c in day if c.start >= now - HOUR_MS]
    prev1h = hour[0].open if hour else None
    high = max((c.high for c in day), default=None)
    low = min((c.low for c in day), default=None)
    volume = sum((c.volume for c in day), ZERO)
    turnover = sum((c.turnover for c in day), ZERO)
    pct = ""
    if last_price is not None and prev24:
        pct = wire.num(((last_price - prev24) / prev24).quantize(Decimal("0.000001")))
    oi = sum(
        (
            a.positions[symbol].qty
            for a in venue.accounts
            if symbol in a.positions and a.positions[symbol].qty > 0
        ),
        ZERO,
    )
    book = venue.engine.books[symbol]
    bid = book.depth("Buy", 1)
    ask = book.depth("Sell", 1)
    rate = venue.funding_rate(symbol)
    return {
        "symbol": symbol,
        "tickDirection": last.tick_direction if last is not None else "",
        "lastPrice": wire.price(spec, last_price, empty=""),
        "indexPrice": wire.price(spec, mark, empty=""),
        "markPrice": wire.price(spec, mark, empty=""),
        "prevPrice24h": wire.price(spec, prev24, empty=""),
        "price24hPcnt": pct,
        "highPrice24h": wire.price(spec, high, empty=""),
        "lowPrice24h": wire.price(spec, low, empty=""),
        "prevPrice1h": wire.price(spec, prev1h, empty=""),
        "openInterest": wire.qty(spec, oi),
        "openInterestValue": wire.num((oi * mark).quantize(Decimal("0.01"))) if mark else "0",
        "turnover24h": wire.num(turnover),
        "volume24h": wire.qty(spec, volume),
        "fundingRate": wire.num(rate),
        "nextFundingTime": str(venue.next_funding[symbol]),
        "fundingIntervalHour": str(spec.funding_interval_minutes // 60),
        "fundingCap": str(spec.upper_funding_rate),
        "predictedDeliveryPrice": "",
        "basisRate": "",
        "basis": "",
        "deliveryFeeRate": "",
        "deliveryTime": "0",
        "bid1Price": wire.price(spec, spec.ticks_to_price(bid[0][0]), empty="") if bid else "",
        "bid1Size": wire.qty(spec, spec.lots_to_qty(bid[0][1])) if bid else "",
        "ask1Price": wire.price(spec, spec.ticks_to_price(ask[0][0]), empty="") if ask else "",
        "ask1Size": wire.qty(spec, spec.lots_to_qty(ask[0][1])) if ask else "",
        "preOpenPrice": "",
        "preQty": "",
        "curPreListingPhase": "",
        "basisRateYear": "",
    }
