"""The daemon process: supervised asyncio tasks wired from the one settings object.

The service streams the market and records it (exchange client → market feed → recorder); with
TRADING_ENABLED and credentials it also trades: the decisions hand intents to execution (`_execution`:
the account lock, the private stream, reconciliation at start, after reconnects and periodically;
docs/execution.md), or a scripted intent source does when SCRIPTED_INTENT_INTERVAL_S is set. Start-up is a
sequence of steps (exchange clock, credentials if configured, public socket, each symbol's candles, the
decisions and execution when trading, subscriptions), each retried until the
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
from typing import TYPE_CHECKING, Any

import structlog
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from infra.db.connection import Database, open_database
from infra.settings import Settings
from schemas.features import feature_spec
from schemas.market import Candle
from trading_daemon.analysis import MarketAnalyzer
from trading_daemon.exchange.clock_sync import keep_clock_synced
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.exchange.websocket import BybitPublicWebSocket
from trading_daemon.features.live import LiveFeatures
from trading_daemon.lifecycle.startup import StartupRunner, StartupStopped
from trading_daemon.lifecycle.systemd import SystemdNotifier
from trading_daemon.market.candles import CandleStore
from trading_daemon.market.feed import BookSink, FeedStats, MarketFeed, MarketSink
from trading_daemon.observability.metrics import DaemonMetrics
from trading_daemon.recorder.recorder import Recorder, RecorderStats, open_recorder_pool
from trading_daemon.resilience.circuit_breaker import BreakerConfig, CircuitBreakerManager
from trading_daemon.resilience.rate_limiter import RateLimiter
from trading_daemon.risk.health import ErrorBurst, WatchedBreakers, WatchedRateLimiter

if TYPE_CHECKING:
    from trading_daemon.api.context import DaemonContext
    from trading_daemon.api.runtime import ApiRuntime
    from trading_daemon.decisions.runtime import DecisionsRuntime
    from trading_daemon.execution.runtime import ExecutionRuntime

log = structlog.get_logger(__name__)
STATUS_PERIOD_S = 5.0


@dataclass(frozen=True)
class ServiceReport:
    feed: FeedStats
    recorder: RecorderStats
    execution: dict[str, Any] | None = None  # ExecutionRuntime.summary() when the daemon traded
    decisions: dict[str, Any] | None = None  # DecisionsRuntime.state() when the daemon decided


async def run_service(
    settings: Settings,
    stop: asyncio.Event,
    *,
    metrics: DaemonMetrics | None = None,
    install_signal_handlers: bool = True,
    notifier: SystemdNotifier | None = None,
    on_api: Callable[[DaemonContext, str], None] | None = None,
) -> ServiceReport:
    """Run until `stop` is set (or SIGTERM/SIGINT); return what was recorded.

    With API_ENABLED the API (and the dashboard) listens from the start of start-up on; `on_api` is called
    with the live context and the API's URL once it does.

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
    # Rate-limit refusals and venue service errors, counted for the risk manager's error-burst halt.
    errors = ErrorBurst(settings.risk.error_burst_count, settings.risk.error_burst_window_s)
    http = BybitHttpClient(
        rest_url,
        api_key=key,
        api_secret=secret,
        rate_limiter=WatchedRateLimiter(limiter, errors.record),
        breakers=WatchedBreakers(breakers, errors.record),
    )
    http.on_time_sync = metrics.exchange_clock_offset_ms.set
    rest = BybitRestClient(http)
    stream = BybitPublicWebSocket(public_url)
    stream.on_frame_dropped = metrics.ws_frame_dropped
    # Every row and candle goes to the recorder and to the live features (whose windows the ML gate reads).
    features = LiveFeatures(
        settings.feed.symbols, spec=feature_spec(settings.feed.snapshot_interval_ms), metrics=metrics
    )
    candle_stores: dict[str, CandleStore] = {}  # the feed's, once it exists
    decisions = (
        _decisions(settings, db, pool, features, candle_stores, http.now_ms, errors, breakers, metrics)
        if settings.trading_enabled and not settings.scripted_intent_interval_s  # a script replaces them
        else None
    )
    # The screener's metrics: the decisions' analyzer when trading, else one of the API's own.
    analyzer = decisions.analyzer if decisions is not None else MarketAnalyzer(settings.analyzer)
    sinks: list[MarketSink] = [recorder, features]
    if decisions is None and settings.api.enabled:
        sinks.append(analyzer)
    execution = await _execution(settings, db, rest, decisions)
    if execution is not None and execution.market is not None:
        sinks.append(execution.market)  # the touch and the market context of audit rows
    book_sinks: list[BookSink] = []
    if decisions is not None:
        sinks = [decisions.arrivals, *sinks, *decisions.sinks, decisions.engine_sink]
        book_sinks += decisions.book_sinks
    feed = MarketFeed(
        settings.feed,
        stream,
        rest,
        sinks,
        exchange_now_ms=http.now_ms,
        metrics=metrics,
        book_sinks=book_sinks,
    )
    candle_stores.update(feed.candles)
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
    decisions_task: asyncio.Task[None] | None = None
    execution_task: asyncio.Task[None] | None = None
    api: ApiRuntime | None = None
    # The API opens beside start-up (its key, users and bcrypt work must not delay the market) and serves
    # /health and /ready during it; an API that cannot start (a taken port) stops the daemon.
    api_opening: asyncio.Task[ApiRuntime] | None = None
    if settings.api.enabled:
        api_opening = loop.create_task(
            _open_api(settings, db, rest, stream, feed, recorder, analyzer, breakers, limiter, metrics,
                      http.now_ms, decisions, execution),
            name="api-open",
        )  # fmt: skip
        api_opening.add_done_callback(functools.partial(_api_opened, stop=stop, on_api=on_api))
    try:
        try:
            await startup.run("exchange clock", rest.sync_time)
            if key or secret:  # recording needs none; configured ones must work (fail now, not at an order)
                await startup.run("credentials", rest.get_wallet_balance)
            await startup.run("public stream", stream.start)
            for symbol in settings.feed.symbols:
                await startup.run(f"candles {symbol}", functools.partial(feed.backfill_candles, symbol))
            if decisions is not None:
                await startup.run("decisions", decisions.open)  # statistics restored, production model loaded
            if execution is not None:
                # Account lock, state machines restored, private stream, reconciled before any decision runs.
                await startup.run("execution", execution.open)
            await startup.run("subscriptions", feed.subscribe)
        except StartupStopped as exc:
            log.info("daemon stopped during start-up", step=exc.step)
        else:
            feed.start_timer()
            if execution is not None:
                execution_task = loop.create_task(execution.run(stop), name="execution")
            if decisions is not None and decisions.engine is not None:
                decisions_task = loop.create_task(decisions.run(stop), name="decisions")
            clock_sync = loop.create_task(
                keep_clock_synced(http, venue.clock_sync_interval_s), name="exchange-clock-sync"
            )
            if api_opening is not None:
                api = await api_opening
                api.started(stop)
            log.info("daemon ready", symbols=settings.feed.symbols, venue=rest_url, database=db.redacted)
            notifier.ready()
            await _report_until_stopped(settings, stop, feed, recorder, metrics, notifier)
    finally:
        log.info("daemon stopping")
        notifier.stopping()
        api_error: BaseException | None = None
        if api_opening is not None:
            try:
                api = await _api_outcome(api_opening)
            except Exception as exc:  # raised once everything else is closed
                api_error = exc
        if api is not None:
            await api.close()  # first: no request reads a component while it closes
        if decisions_task is not None:
            stop.set()
            await decisions_task  # the engine drains, the writers flush, before the feed and pool go
        if execution is not None:
            stop.set()
            if execution_task is not None:
                await execution_task
            await execution.close()  # stream closed, lock released, BOT_STOP audited
            await execution.pool.close()
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
    if api_error is not None:
        raise api_error
    report = ServiceReport(
        feed.stats,
        recorder.stats(),
        execution.summary() if execution is not None else None,
        decisions.state() if decisions is not None and decisions.engine is not None else None,
    )
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


def _decisions(
    settings: Settings,
    db: Database,
    pool: AsyncConnectionPool,
    features: LiveFeatures,
    candle_stores: dict[str, CandleStore],
    exchange_now_ms: Callable[[], int],
    errors: ErrorBurst,
    breakers: CircuitBreakerManager,
    metrics: DaemonMetrics,
) -> DecisionsRuntime:
    """The decisions (issue 12): analyzer, detectors, health, risk, the ML gate, strategies; the engine is
    built when execution attaches its submitter and account (`DecisionsRuntime.attach`)."""
    # Imported here: PyTorch loads only when the daemon trades.
    from trading_daemon.decisions.runtime import DecisionsRuntime

    def candles(symbol: str) -> list[Candle]:
        store = candle_stores.get(symbol)
        return [] if store is None else store.window()

    return DecisionsRuntime(
        decisions=settings.decisions, gate=settings.ml_gate, risk=settings.risk, analyzer=settings.analyzer,
        strategies=settings.strategies, detection=settings.detection, symbols=settings.feed.symbols,
        spec=feature_spec(settings.feed.snapshot_interval_ms), db=db, pool=pool, models_dir=settings.models_dir,
        features=features, candles=candles, exchange_now_ms=exchange_now_ms, errors=errors, breakers=breakers,
        metrics=metrics,
    )  # fmt: skip


async def _execution(
    settings: Settings, db: Database, rest: BybitRestClient, decisions: DecisionsRuntime | None
) -> ExecutionRuntime | None:
    """Execution (issue 11) when TRADING_ENABLED and credentials are set: its own pool, the decisions' risk
    check after the instrument rules, and the decisions' engine attached to its submitter and account."""
    venue = settings.exchange
    key, secret = _secret(venue.api_key), _secret(venue.api_secret)
    if not settings.trading_enabled:
        return None
    if not (key and secret):
        log.error("TRADING_ENABLED but no BYBIT_API_KEY/BYBIT_API_SECRET: the daemon records only")
        return None
    from trading_daemon.execution.market_view import MarketView
    from trading_daemon.execution.runtime import Credentials, ExecutionRuntime

    pool = await db.open_pool(min_size=1, max_size=4)
    runtime = ExecutionRuntime(
        settings.execution, db=db, pool=pool, rest=rest, ws_private_url=venue.urls.ws_private,
        credentials=Credentials(key, secret), symbols=settings.feed.symbols, market=MarketView(),
        checks=[decisions.risk] if decisions is not None else [],
    )  # fmt: skip
    if decisions is not None:
        decisions.attach(runtime.manager, runtime.account)
    return runtime


async def _open_api(
    settings: Settings,
    db: Database,
    rest: BybitRestClient,
    stream: BybitPublicWebSocket,
    feed: MarketFeed,
    recorder: Recorder,
    analyzer: MarketAnalyzer,
    breakers: CircuitBreakerManager,
    limiter: RateLimiter,
    metrics: DaemonMetrics,
    exchange_now_ms: Callable[[], int],
    decisions: DecisionsRuntime | None,
    execution: ExecutionRuntime | None,
) -> ApiRuntime:
    from trading_daemon.api.context import DaemonContext
    from trading_daemon.api.runtime import ApiRuntime

    context = DaemonContext(
        settings=settings, api=settings.api, db=db, pool=await db.open_pool(min_size=1, max_size=4), rest=rest,
        stream=stream, feed=feed, recorder=recorder, analyzer=analyzer, breakers=breakers, limiter=limiter,
        metrics=metrics, exchange_now_ms=exchange_now_ms, decisions=decisions, execution=execution,
    )  # fmt: skip
    return await ApiRuntime.open(context)


def _api_opened(
    task: asyncio.Task[ApiRuntime],
    *,
    stop: asyncio.Event,
    on_api: Callable[[DaemonContext, str], None] | None,
) -> None:
    if task.cancelled():
        return
    if task.exception() is not None:
        log.error("the API could not start: the daemon stops", error=str(task.exception()))
        stop.set()
    elif on_api is not None:
        api = task.result()
        on_api(api.context, api.url)


async def _api_outcome(task: asyncio.Task[ApiRuntime]) -> ApiRuntime | None:
    """The opened API to close, or None; an API that failed to open raises (the daemon's exit names why)."""
    if not task.done():
        task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return None


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
