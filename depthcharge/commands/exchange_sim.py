"""``depthcharge exchange-sim``: run the paper exchange (Bybit v5 REST + WebSockets) in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

import click

from depthcharge.commands.recording import Recording, load_recording, parse_time_ms
from exchange_sim.config import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    DEFAULT_BALANCE,
    DEFAULT_SYMBOLS,
    AccountConfig,
    SimConfig,
)
from exchange_sim.liquidity import LadderMarket
from exchange_sim.replay import ReplayMarket
from exchange_sim.server.app import SimServer
from exchange_sim.venue import MarketSource, Venue


def market_factory(
    kind: str, seed: int, recording: Recording | None = None
) -> Callable[[Venue], MarketSource]:
    """The market source: ``synthetic`` (the generator of docs/exchange_sim_market.md), ``ladder``, or ``replay`` of a recording."""
    if kind == "replay":
        if recording is None:
            raise click.BadParameter("--market replay needs --replay-source", param_hint="--replay-source")
        return lambda venue: ReplayMarket(venue.engine, recording.snapshots, recording.trades)
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
    help="Exchange-clock speed relative to wall time, a ceiling: when the process cannot keep it, the clock "
    "slows down (every topic keeps its exchange-time cadence) and GET /sim reports the achieved speed. At a "
    "speed other than 1, request timestamps are checked against the wall clock, since no client clock can "
    "follow the accelerated one.",
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
    type=click.Choice(["synthetic", "ladder", "replay"]),
    default="synthetic",
    show_default=True,
    help="Order flow: the synthetic market generator, a static seeded ladder with light churn, or a replay "
    "of recorded raw snapshot rows and trades.",
)
@click.option(
    "--replay-source",
    default=None,
    help="For --market replay: 'db' (the project database: DATABASE_URL or the embedded server) or a "
    "Parquet lake directory holding raw_snapshots/ and optionally public_trades/.",
)
@click.option("--replay-from", default=None, help="Replay start: ms since the epoch or ISO 8601 (UTC).")
@click.option(
    "--replay-to", default=None, help="Replay end (exclusive): ms since the epoch or ISO 8601 (UTC)."
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
    replay_source: str | None,
    replay_from: str | None,
    replay_to: str | None,
) -> None:
    """Run the paper exchange: Bybit v5 REST, /v5/public/linear, /v5/private and /sim admin on one port."""
    listed = tuple(s.strip().upper() for s in symbols.split(",") if s.strip())
    if not listed:
        raise click.BadParameter("at least one symbol is needed", param_hint="--symbols")
    recording = None
    if market == "replay":
        if replay_source is None:
            raise click.BadParameter("--market replay needs --replay-source", param_hint="--replay-source")
        start = parse_time_ms(replay_from, "--replay-from") if replay_from else 0
        end = parse_time_ms(replay_to, "--replay-to") if replay_to else 2**62
        recording = load_recording(replay_source, listed, start, end)
        click.echo(f"replaying {recording.describe()}")
    config = SimConfig(
        host=host,
        start_ms=recording.start_ms if recording is not None else None,
        port=port,
        seed=seed,
        symbols=listed,
        speed=speed,
        auth_clock="exchange" if speed == 1 else "wall",
        accounts=(AccountConfig(api_key=api_key, api_secret=api_secret, balance=balance),),
    )
    try:
        server = SimServer(config, market_factory(market, seed, recording))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--symbols") from None

    async def serve() -> None:
        stop = asyncio.Event()
        # SIGTERM (systemd, the demo) closes the sockets and ends with status 0, as Ctrl-C does.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with server:
            click.echo(
                f"paper exchange on {server.base_url} (ws {server.ws_url}/v5/public/linear, /v5/private)"
            )
            await stop.wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
