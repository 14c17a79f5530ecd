"""The daemon process: supervised asyncio tasks wired from the one settings object.

Today the service streams the market and records it (exchange client → market feed → recorder);
strategies, risk and execution join it in later issues. SIGTERM/SIGINT stop it gracefully: the feed
stops, the sockets close, the recorder flushes to the database or, if it is down, to the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from infra.db.connection import open_database
from infra.settings import Settings
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitPublicWebSocket
from trading_daemon.lifecycle.systemd import SystemdNotifier
from trading_daemon.market.feed import FeedStats, MarketFeed
from trading_daemon.observability.metrics import DaemonMetrics
from trading_daemon.recorder.recorder import Recorder, RecorderStats, open_recorder_pool
from trading_daemon.resilience.circuit_breaker import CircuitBreakerManager
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
) -> ServiceReport:
    """Run until `stop` is set (or SIGTERM/SIGINT); return what was recorded."""
    loop = asyncio.get_running_loop()
    if install_signal_handlers:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    notifier = SystemdNotifier()  # a no-op unless NOTIFY_SOCKET is set
    metrics = metrics or DaemonMetrics()
    rest_url, public_url, _ = settings.venue_urls
    # Starting the embedded server and checking the target are blocking: keep them off the loop.
    db = await asyncio.to_thread(open_database, settings)
    pool = await open_recorder_pool(db)
    recorder = await Recorder.for_var_dir(pool, settings.var_dir).start()
    limiter = RateLimiter(listener=metrics.observe_rate_limit)
    breakers = CircuitBreakerManager(listener=metrics.breaker_state_changed)
    http = BybitHttpClient(rest_url, rate_limiter=limiter, breakers=breakers)
    rest = BybitRestClient(http)
    stream = BybitPublicWebSocket(public_url)
    feed = MarketFeed(
        settings.symbols, stream, rest, recorder, exchange_now_ms=http.now_ms,
        interval_ms=settings.snapshot_interval_ms, grace_ms=settings.row_grace_ms, metrics=metrics,
    )  # fmt: skip
    stream.on_reconnect = _on_reconnect(feed, metrics)
    watchdog: asyncio.Task[None] | None = None
    try:
        await rest.sync_time()
        await stream.start()
        await feed.start()
        log.info("daemon ready", symbols=settings.symbols, venue=rest_url, database=db.redacted)
        notifier.ready()
        notifier.status(f"recording {','.join(settings.symbols)}")
        watchdog = loop.create_task(notifier.watchdog_loop(stop), name="systemd-watchdog")
        while not stop.is_set():
            # Recorder health into the metrics, and into `systemctl status`.
            rec = recorder.stats()
            metrics.set_recorder_state(
                lag_seconds=rec.lag_s, spool_rows=rec.rows_spooled, spool_bytes=rec.spool_bytes
            )
            notifier.status(
                f"recording {','.join(settings.symbols)}: {feed.stats.rows} rows, recorder {rec.state}"
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STATUS_PERIOD_S)
    finally:
        log.info("daemon stopping")
        notifier.stopping()
        await feed.stop()
        await stream.close()
        await recorder.close()
        await rest.close()
        await pool.close()
        db.close()
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    report = ServiceReport(feed.stats, recorder.stats())
    log.info("daemon stopped", rows=report.feed.rows, trades=report.feed.trades, candles=report.feed.candles)
    return report


def _on_reconnect(feed: MarketFeed, metrics: DaemonMetrics) -> Callable[[], None]:
    def hook() -> None:
        metrics.ws_reconnects.labels(stream="public").inc()
        feed.on_reconnect()

    return hook


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
