"""The daemon process: supervised asyncio tasks wired from the one settings object.

Today the service streams the market and records it (exchange client → market feed → recorder);
strategies, risk and execution join it in later issues. Start-up is a sequence of steps (exchange clock,
credentials if configured, public socket, each symbol's candles, subscriptions), each retried until the
venue lets it succeed (`lifecycle.startup`): a daemon under systemd waits for the exchange rather than dying
with it, and only a configuration error stops it (`StartupError`). Once running, the clock offset is
re-measured every CLOCK_SYNC_INTERVAL_S. SIGTERM/SIGINT stop it gracefully, during start-up too: the feed
stops, the sockets close, the recorder flushes to the database or, if it is down, to the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from pydantic import SecretStr

from infra.db.connection import open_database
from infra.settings import Settings
from schemas.features import feature_spec
from trading_daemon.exchange.clock_sync import keep_clock_synced
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitPublicWebSocket
from trading_daemon.features.live import LiveFeatures
from trading_daemon.lifecycle.startup import StartupRunner, StartupStopped
from trading_daemon.lifecycle.systemd import SystemdNotifier
from trading_daemon.market.feed import FeedStats, MarketFeed
from trading_daemon.observability.metrics import DaemonMetrics
from trading_daemon.recorder.recorder import Recorder, RecorderStats, open_recorder_pool
from trading_daemon.resilience.circuit_breaker import BreakerConfig, CircuitBreakerManager
from trading_daemon.resilience.rate_limiter import RateLimiter

log = structlog.get_logger(__name__)
STATUS_PERIOD_S = 5.0


@dataclass(frozen=True)
class ServiceReport:
    feed: FeedStats
    recorder: RecorderStats


async def run_service(
    settings: Settings,
    stop: asyncio.Event,
    *,
    metrics: DaemonMetrics | None = None,
    install_signal_handlers: bool = True,
    notifier: SystemdNotifier | None = None,
) -> ServiceReport:
    """Run until `stop` is set (or SIGTERM/SIGINT); return what was recorded.

    Raises `lifecycle.startup.StartupError` when start-up meets a configuration error (bad credentials,
    an unknown symbol, a wrong venue URL); every other start-up failure is retried.
    """
    loop = asyncio.get_running_loop()
    if install_signal_handlers:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    own_notifier = notifier is None
    notifier = notifier or SystemdNotifier()  # a no-op unless NOTIFY_SOCKET is set
    metrics = metrics or DaemonMetrics()
    venue = settings.exchange
    rest_url, public_url = venue.urls.rest, venue.urls.ws_public
    # Starting the embedded server and checking the target are blocking: keep them off the loop.
    db = await asyncio.to_thread(open_database, settings.database)
    pool = await open_recorder_pool(db)
    recorder = await Recorder(pool, settings.spool.dir).start()
    limiter = RateLimiter(listener=metrics.observe_rate_limit)
    breakers = CircuitBreakerManager(
        BreakerConfig(
            failure_threshold=venue.breaker_failure_threshold, cooldown_seconds=venue.breaker_cooldown_s
        ),
        listener=metrics.breaker_state_changed,
    )
    key, secret = _secret(venue.api_key), _secret(venue.api_secret)
    http = BybitHttpClient(
        rest_url,
        api_key=key,
        api_secret=secret,
        rate_limiter=limiter,
        breakers=breakers,
    )
    http.on_time_sync = metrics.exchange_clock_offset_ms.set
    rest = BybitRestClient(http)
    stream = BybitPublicWebSocket(public_url)
    stream.on_frame_dropped = metrics.ws_frame_dropped
    # Every row and candle goes to the recorder and to the live features (whose windows the ML gate reads).
    features = LiveFeatures(
        settings.feed.symbols, spec=feature_spec(settings.feed.snapshot_interval_ms), metrics=metrics
    )
    feed = MarketFeed(
        settings.feed, stream, rest, [recorder, features], exchange_now_ms=http.now_ms, metrics=metrics
    )
    # Books go stale the moment the socket drops, before the resubscription brings their snapshots.
    stream.on_disconnect = feed.on_disconnect
    stream.on_reconnect = _count_reconnect(metrics)
    # The REST client's clock: an IP ban's end is measured on it, so start-up sits the ban out exactly.
    startup = StartupRunner(
        stop, notifier=notifier, max_backoff_s=settings.startup.retry_max_s, clock=http.now_ms
    )
    # From the start: systemd's watchdog may already run while start-up waits for the venue.
    watchdog = loop.create_task(notifier.watchdog_loop(stop), name="systemd-watchdog")
    clock_sync: asyncio.Task[None] | None = None
    try:
        try:
            await startup.run("exchange clock", rest.sync_time)
            if key or secret:  # recording needs none; configured ones must work (fail now, not at an order)
                await startup.run("credentials", rest.get_wallet_balance)
            await startup.run("public stream", stream.start)
            for symbol in settings.feed.symbols:
                await startup.run(f"candles {symbol}", functools.partial(feed.backfill_candles, symbol))
            await startup.run("subscriptions", feed.subscribe)
        except StartupStopped as exc:
            log.info("daemon stopped during start-up", step=exc.step)
        else:
            feed.start_timer()
            clock_sync = loop.create_task(
                keep_clock_synced(http, venue.clock_sync_interval_s), name="exchange-clock-sync"
            )
            log.info("daemon ready", symbols=settings.feed.symbols, venue=rest_url, database=db.redacted)
            notifier.ready()
            await _report_until_stopped(settings, stop, feed, recorder, metrics, notifier)
    finally:
        log.info("daemon stopping")
        notifier.stopping()
        for task in (clock_sync, watchdog):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await feed.stop()
        await stream.close()
        await recorder.close()
        await rest.close()
        await pool.close()
        db.close()
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        if own_notifier:
            notifier.close()
    report = ServiceReport(feed.stats, recorder.stats())
    log.info("daemon stopped", rows=report.feed.rows, trades=report.feed.trades, candles=report.feed.candles)
    return report


async def _report_until_stopped(
    settings: Settings,
    stop: asyncio.Event,
    feed: MarketFeed,
    recorder: Recorder,
    metrics: DaemonMetrics,
    notifier: SystemdNotifier,
) -> None:
    """Recorder health into the metrics, and into `systemctl status`, until `stop` is set."""
    symbols = ",".join(settings.feed.symbols)
    notifier.status(f"recording {symbols}")
    while not stop.is_set():
        rec = recorder.stats()
        metrics.set_recorder_state(
            lag_seconds=rec.lag_s, spool_rows=rec.rows_spooled, spool_bytes=rec.spool_bytes
        )
        notifier.status(f"recording {symbols}: {feed.stats.rows} rows, recorder {rec.state}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STATUS_PERIOD_S)


def _count_reconnect(metrics: DaemonMetrics) -> Callable[[], None]:
    def hook() -> None:
        metrics.ws_reconnects.labels(stream="public").inc()

    return hook


def _secret(value: SecretStr | None) -> str | None:
    """A configured secret, or None when unset or empty (`BYBIT_API_KEY=` in .env)."""
    text = value.get_secret_value() if value is not None else ""
    return text or None


def run(settings: Settings, *, duration_s: float | None = None) -> ServiceReport:
    """Run the service in a fresh event loop (uvloop when installed); stop after `duration_s` if given."""

    async def main() -> ServiceReport:
        stop = asyncio.Event()
        if duration_s is not None:
            asyncio.get_running_loop().call_later(duration_s, stop.set)
        return await run_service(settings, stop)

    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())
