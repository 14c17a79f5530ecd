"""``depthcharge exchange-sim``: run the paper exchange (Bybit v5 REST + WebSockets) in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

import click

from exchange_sim.config import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    DEFAULT_BALANCE,
    DEFAULT_SYMBOLS,
    AccountConfig,
    SimConfig,
)
from exchange_sim.liquidity import LadderMarket
from exchange_sim.server.app import SimServer
from exchange_sim.venue import MarketSource, Venue


def market_factory(kind: str, seed: int) -> Callable[[Venue], MarketSource]:
    """The market source behind the exchange: ``synthetic`` (SIM_MARKET.md generator) or ``ladder``."""
    if kind == "ladder":
        return lambda venue: LadderMarket(venue.engine, seed=seed)
    if kind == "synthetic":
        # Imported here so that the ladder mode does not need the generator's numpy machinery.
        from exchange_sim.market.generator import build_market

        return lambda venue: build_market(venue.engine, list(venue.instruments), seed=seed)
    raise click.BadParameter(f"unknown market {kind!r}", param_hint="--market")


def _balance(ctx: click.Context, param: click.Parameter, value: str) -> Decimal:
    try:
        balance = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a decimal amount") from None
    if not balance.is_finite() or balance < 0:
        raise click.BadParameter(f"{value!r} must be a non-negative amount of USDT")
    return balance


@click.command("exchange-sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8090, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free)."
)
@click.option("--seed", default=42, show_default=True, type=int, help="Seed of ids and simulated order flow.")
@click.option(
    "--symbols",
    default=",".join(DEFAULT_SYMBOLS),
    show_default=True,
    help="Comma-separated linear perpetuals to list.",
)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Exchange-clock speed relative to wall time. At a speed other than 1, request timestamps are "
    "checked against the wall clock, since no client clock can follow the accelerated one.",
)
@click.option("--api-key", default=DEFAULT_API_KEY, show_default=True, help="API key of the account.")
@click.option(
    "--api-secret", default=DEFAULT_API_SECRET, show_default=True, help="API secret of the account."
)
@click.option(
    "--balance",
    default=str(DEFAULT_BALANCE),
    show_default=True,
    callback=_balance,
    help="Starting USDT wallet balance.",
)
@click.option(
    "--market",
    type=click.Choice(["synthetic", "ladder"]),
    default="synthetic",
    show_default=True,
    help="Order flow: the synthetic market generator, or a static seeded ladder with light churn.",
)
def exchange_sim(
    host: str,
    port: int,
    seed: int,
    symbols: str,
    speed: float,
    api_key: str,
    api_secret: str,
    balance: Decimal,
    market: str,
) -> None:
    """Run the paper exchange: Bybit v5 REST, /v5/public/linear, /v5/private and /sim admin on one port."""
    listed = tuple(s.strip().upper() for s in symbols.split(",") if s.strip())
    if not listed:
        raise click.BadParameter("at least one symbol is needed", param_hint="--symbols")
    config = SimConfig(
        host=host,
        port=port,
        seed=seed,
        symbols=listed,
        speed=speed,
        accounts=(AccountConfig(api_key=api_key, api_secret=api_secret, balance=balance),),
    )
    try:
        server = SimServer(config, market_factory(market, seed))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--symbols") from None

    async def serve() -> None:
        async with server:
            click.echo(
                f"paper exchange on {server.base_url} (ws {server.ws_url}/v5/public/linear, /v5/private)"
            )
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
