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
from trading_daemon.exchange.clock_sync import keep_clock_synced
from trading_daemon.exchange.errors import BybitIpBannedError
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitPublicWebSocket
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
    rest_url, public_url, _ = settings.venue_urls
    # Starting the embedded server and checking the target are blocking: keep them off the loop.
    db = await asyncio.to_thread(open_database, settings)
    pool = await open_recorder_pool(db)
    recorder = await Recorder.for_var_dir(pool, settings.var_dir).start()
    limiter = RateLimiter(listener=metrics.observe_rate_limit)
    breakers = CircuitBreakerManager(
        BreakerConfig(
            failure_threshold=settings.circuit_breaker_failure_threshold,
            cooldown_seconds=settings.circuit_breaker_cooldown_s,
        ),
        listener=metrics.breaker_state_changed,
    )
    key, secret = _secret(settings.bybit_api_key), _secret(settings.bybit_api_secret)
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
    feed = MarketFeed(
        settings.symbols, stream, rest, recorder, exchange_now_ms=http.now_ms,
        interval_ms=settings.snapshot_interval_ms, grace_ms=settings.row_grace_ms, metrics=metrics,
        backfill_min_interval_s=settings.candle_backfill_min_interval_s,
        backfill_max_interval_s=settings.candle_backfill_max_interval_s,
    )  # fmt: skip
    # Books go stale the moment the socket drops, before the resubscription brings their snapshots.
    stream.on_disconnect = feed.on_disconnect
    stream.on_reconnect = _count_reconnect(metrics)
    startup = StartupRunner(
        stop, notifier=notifier, max_backoff_s=settings.startup_retry_max_s, retry_after=_ban_wait(http)
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
            for symbol in settings.symbols:
                await startup.run(f"candles {symbol}", functools.partial(feed.backfill_candles, symbol))
            await startup.run("subscriptions", feed.subscribe)
        except StartupStopped as exc:
            log.info("daemon stopped during start-up", step=exc.step)
        else:
            feed.start_timer()
            clock_sync = loop.create_task(
                keep_clock_synced(http, settings.clock_sync_interval_s), name="exchange-clock-sync"
            )
            log.info("daemon ready", symbols=settings.symbols, venue=rest_url, database=db.redacted)
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
    symbols = ",".join(settings.symbols)
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


def _ban_wait(http: BybitHttpClient) -> Callable[[BaseException], float]:
    """Start-up waits out an IP ban (HTTP 403) instead of knocking on the door again and again."""

    def wait_s(exc: BaseException) -> float:
        if isinstance(exc, BybitIpBannedError):
            return max(0.0, (http.banned_until_ms - http.now_ms()) / 1000)
        return 0.0

    return wait_s


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
