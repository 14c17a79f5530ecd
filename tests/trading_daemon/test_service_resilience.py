"""The service against a paper exchange that fails: start-up keeps trying (and says so to systemd) until the
venue lets it through, a stop request ends the wait, configuration errors are fatal, and a jump of the
exchange clock is followed by the periodic re-measure so candle back-fills keep working."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from exchange_sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, FaultConfig, SimConfig
from exchange_sim.liquidity import LadderMarket
from exchange_sim.market import build_market
from exchange_sim.server.app import SimServer
from infra.db.connection import Database
from infra.db.repositories import read_candles, read_snapshots
from infra.settings import Settings, load_settings
from schemas.arrow import table_to_raw_rows
from trading_daemon.lifecycle.startup import StartupError
from trading_daemon.lifecycle.systemd import SystemdNotifier
from trading_daemon.observability.metrics import DaemonMetrics
from trading_daemon.service import run_service

SYMBOLS = ("BTCUSDT", "ETHUSDT")
MINUTE = 60_000


class NotifyListener:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.path = path
        self.messages: list[str] = []
        self.notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)})  # what the daemon sends with

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def any(self, predicate: Callable[[str], bool]) -> bool:
        return any(predicate(m) for m in self.drain())


@pytest.fixture
def systemd() -> Iterator[NotifyListener]:
    with tempfile.TemporaryDirectory(prefix="dc-notify-") as directory:  # AF_UNIX paths are short
        listener = NotifyListener(Path(directory) / "notify.sock")
        yield listener
        listener.notifier.close()
        listener.sock.close()


def _settings(db: Database, tmp_path: Path, server: SimServer, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "DATABASE_URL": db.conninfo,
        "VAR_DIR": str(tmp_path),
        "TRADING_PAIRS": ",".join(SYMBOLS),
        "BYBIT_REST_URL": server.base_url,
        "BYBIT_WS_PUBLIC_URL": f"{server.ws_url}/v5/public/linear",
    }
    return load_settings(**{**values, **overrides})


def _sample(metrics: DaemonMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"depthcharge_{name}", labels) or 0.0


async def _until(predicate: Callable[[], bool], within: float, what: str, service: asyncio.Task[Any]) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if service.done():
            raise AssertionError(f"the service stopped while waiting for {what}") from service.exception()
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within} s: {what}")
        await asyncio.sleep(0.05)


async def _admin(server: SimServer, path: str, body: dict[str, Any]) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.base_url}{path}", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


def _ladder(venue: Any) -> LadderMarket:
    return LadderMarket(venue.engine, seed=3, events_per_second=40, trade_share=0.2)


@pytest.mark.slow
async def test_startup_waits_for_the_venue_and_its_breaker(
    db: Database, tmp_path: Path, systemd: NotifyListener
) -> None:
    """The kline endpoint fails: start-up retries, the market breaker opens and is waited out (twice), the
    status says what start-up waits for; once the venue recovers the daemon becomes ready and records."""
    faults = FaultConfig(error_rate=1.0, error_kinds=("http",), paths=("/v5/market/kline",))
    server = SimServer(SimConfig(port=0, symbols=SYMBOLS, faults=faults), _ladder)
    await server.start()
    settings = _settings(
        db, tmp_path, server, CIRCUIT_BREAKER_COOLDOWN_S=1.0, STARTUP_RETRY_MAX_S=1.0,
        BYBIT_API_KEY=DEFAULT_API_KEY, BYBIT_API_SECRET=DEFAULT_API_SECRET,  # the credentials step runs too
    )  # fmt: skip
    metrics = DaemonMetrics()
    notifier = systemd.notifier
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_service(settings, stop, metrics=metrics, install_signal_handlers=False, notifier=notifier)
    )
    try:
        await _until(
            lambda: (
                _sample(metrics, "circuit_breaker_transitions_total", breaker="bybit_market", state="open")
                >= 2
            ),
            20,
            "the market breaker opening, being waited out and opening again",
            task,
        )
        assert systemd.any(lambda m: m.startswith("STATUS=starting: waiting for candles BTCUSDT (attempt"))
        assert systemd.any(lambda m: m.startswith("EXTEND_TIMEOUT_USEC="))
        assert not systemd.any(lambda m: m == "READY=1")
        await _admin(server, "/sim/faults", {"error_rate": 0.0})
        await _until(lambda: systemd.any(lambda m: m == "READY=1"), 15, "READY=1", task)
        await asyncio.sleep(2.5)
        stop.set()
        report = await asyncio.wait_for(task, 30)
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        await server.stop()
    assert (
        systemd.any(lambda m: m.startswith("STATUS=recording BTCUSDT,ETHUSDT"))
        and "STOPPING=1" in systemd.drain()
    )
    assert all(n >= 2 for n in report.feed.by_symbol_rows.values()), report.feed
    with db.connect() as conn:
        for symbol in SYMBOLS:
            rows = table_to_raw_rows(read_snapshots(conn, symbol, 0, server.venue.clock.now() + MINUTE))
            assert len(rows) == report.feed.by_symbol_rows[symbol]  # every row built was recorded, once


@pytest.mark.parametrize(
    ("faults", "status"),
    [
        (FaultConfig(error_rate=1.0, error_kinds=("http",)), "starting: waiting for exchange clock"),
        (FaultConfig(latency_ms=20_000, paths=("/v5/market/time",)), "starting: exchange clock"),
    ],
    ids=["between-attempts", "request-in-flight"],
)
async def test_stop_ends_a_waiting_startup(
    db: Database, tmp_path: Path, systemd: NotifyListener, faults: FaultConfig, status: str
) -> None:
    server = SimServer(SimConfig(port=0, symbols=SYMBOLS, faults=faults), _ladder)
    await server.start()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_service(
            _settings(db, tmp_path, server), stop, install_signal_handlers=False, notifier=systemd.notifier
        )
    )
    try:
        await _until(lambda: systemd.any(lambda m: m.startswith(f"STATUS={status}")), 10, status, task)
        await asyncio.sleep(0.2)
        stop.set()
        started = time.monotonic()
        report = await asyncio.wait_for(task, 10)
        took = time.monotonic() - started
    finally:
        stop.set()
        await server.stop()
    assert took < 1.0  # the wait, or the request in flight, is abandoned at once
    assert report.feed.rows == 0 and report.recorder.rows_spooled == 0
    assert "STOPPING=1" in systemd.drain() and "READY=1" not in systemd.messages


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"TRADING_PAIRS": "BTCUSDT,XRPUSDT"},
            r"candles XRPUSDT.*'XRPUSDT' is not a listed.*check TRADING_PAIRS",
        ),
        (
            {"BYBIT_API_KEY": "XkNoSuchKey", "BYBIT_API_SECRET": "nope"},
            r"'credentials'.*retCode 10003.*check BYBIT_API_KEY and BYBIT_API_SECRET",
        ),
    ],
    ids=["unknown-symbol", "bad-credentials"],
)
async def test_configuration_errors_are_fatal(
    db: Database, tmp_path: Path, overrides: dict[str, object], expected: str
) -> None:
    server = SimServer(SimConfig(port=0, symbols=SYMBOLS), _ladder)
    await server.start()
    try:
        started = time.monotonic()
        with pytest.raises(StartupError, match=expected):
            await asyncio.wait_for(
                run_service(
                    _settings(db, tmp_path, server, **overrides),
                    asyncio.Event(),
                    install_signal_handlers=False,
                ),
                10,
            )
        assert time.monotonic() - started < 5  # no retrying of what retrying cannot fix
    finally:
        await server.stop()


@pytest.mark.slow
async def test_clock_jump_is_followed_and_the_candle_hole_filled(db: Database, tmp_path: Path) -> None:
    """The exchange clock jumps minutes ahead during an outage. The re-measure catches up within its period,
    so the back-fill of the candles lost meanwhile keeps them instead of dropping them as still open."""
    server = SimServer(
        SimConfig(port=0, symbols=SYMBOLS), lambda venue: build_market(venue.engine, list(SYMBOLS), seed=5)
    )
    await server.start()
    metrics = DaemonMetrics()
    stop = asyncio.Event()
    settings = _settings(db, tmp_path, server, CLOCK_SYNC_INTERVAL_S=0.5, CANDLE_BACKFILL_MIN_INTERVAL_S=0.5)
    task = asyncio.create_task(run_service(settings, stop, metrics=metrics, install_signal_handlers=False))
    try:
        await _until(
            lambda: _sample(metrics, "market_messages_total", topic="kline") >= 2, 20, "streaming", task
        )
        before = _sample(metrics, "exchange_clock_offset_ms")
        now = server.venue.clock.now()
        await _admin(server, "/sim/ws/disconnect", {"scope": "public"})
        jump = now - now % MINUTE + 3 * MINUTE + 30_000 - now  # three confirms go nowhere
        await _admin(server, "/sim/clock/advance", {"ms": jump})
        await _until(
            lambda: _sample(metrics, "ws_reconnects_total", stream="public") >= 1, 10, "reconnect", task
        )
        await _until(
            lambda: _sample(metrics, "exchange_clock_offset_ms") > before + jump - 1_000,
            3,
            "the re-measure",
            task,
        )
        now = server.venue.clock.now()
        boundary = now - now % MINUTE + MINUTE
        await _admin(
            server, "/sim/clock/advance", {"ms": boundary + 10 - now}
        )  # the confirm reveals the hole
        await _until(
            lambda: all(
                _sample(metrics, "candle_backfills_total", symbol=s, outcome="filled") >= 1 for s in SYMBOLS
            ),
            10,
            "the hole filled",
            task,
        )
        await asyncio.sleep(1.5)
        stop.set()
        report = await asyncio.wait_for(task, 30)
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        await server.stop()
    assert report.recorder.rows_spooled == 0
    with db.connect() as conn:
        for symbol in SYMBOLS:
            starts = (
                read_candles(conn, symbol, boundary - 10 * MINUTE, boundary).column("start_ms").to_pylist()
            )
            assert starts == list(range(boundary - 10 * MINUTE, boundary, MINUTE)), (
                starts
            )  # no minute missing
            rows = table_to_raw_rows(read_snapshots(conn, symbol, 0, boundary + MINUTE))
            assert len(rows) == report.feed.by_symbol_rows[symbol]
            assert all(b.ts - a.ts == 1000 for a, b in itertools.pairwise(rows))
            assert rows[-1].last_candle_start_ms == boundary - MINUTE  # the pin caught up


def test_resilience_settings_are_checked() -> None:
    settings = load_settings(_env_file=None)
    assert (settings.clock_sync_interval_s, settings.startup_retry_max_s) == (300.0, 30.0)
    assert (settings.circuit_breaker_failure_threshold, settings.circuit_breaker_cooldown_s) == (5, 60.0)
    with pytest.raises(ValidationError, match=r"CANDLE_BACKFILL_MIN_INTERVAL_S .* must not exceed"):
        load_settings(_env_file=None, CANDLE_BACKFILL_MIN_INTERVAL_S=10, CANDLE_BACKFILL_MAX_INTERVAL_S=5)
    with pytest.raises(ValidationError, match="CLOCK_SYNC_INTERVAL_S"):
        load_settings(_env_file=None, CLOCK_SYNC_INTERVAL_S=0)


async def test_record_command_reports_a_configuration_error_in_one_line_and_exits_2(db: Database) -> None:
    """What systemd sees: exit status 2 (RestartPreventExitStatus=2 in the unit), one line, no traceback."""
    server = SimServer(SimConfig(port=0, symbols=SYMBOLS), _ladder)
    await server.start()
    try:
        env = {
            **os.environ,
            "DATABASE_URL": db.conninfo,
            "BYBIT_REST_URL": server.base_url,
            "BYBIT_WS_PUBLIC_URL": f"{server.ws_url}/v5/public/linear",
            "TRADING_PAIRS": "BTCUSDT,XRPUSDT",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "depthcharge", "record", "--duration", "20",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await server.stop()
    assert proc.returncode == 2, stderr.decode()
    lines = [line for line in stderr.decode().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "XRPUSDT" in lines[0] and "TRADING_PAIRS" in lines[0], stderr.decode()
    assert "Traceback" not in stderr.decode()
