"""SystemdNotifier against real AF_UNIX datagram sockets, and the shipped unit file."""

from __future__ import annotations

import asyncio
import configparser
import itertools
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from trading_daemon.lifecycle.systemd import SystemdNotifier

UNIT_FILE = Path(__file__).resolve().parents[3] / "infra" / "systemd" / "depthcharge-daemon.service"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer than that.
    path = Path(tempfile.mkdtemp(prefix="dc-sd-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    # The test run itself may be under systemd; its variables must not leak into the tests.
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def receiver(short_dir: Path, clean_env: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A bound datagram socket standing in for systemd, named by NOTIFY_SOCKET."""
    path = short_dir / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    clean_env.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def drain(sock: socket.socket) -> list[str]:
    """Every datagram queued on `sock`, without waiting."""
    out: list[str] = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out


def test_messages_arrive_exactly(receiver: socket.socket) -> None:
    with SystemdNotifier() as notifier:
        assert notifier.enabled
        assert notifier.ready()
        assert notifier.status("trading BTCUSDT")
        assert notifier.watchdog()
        assert notifier.stopping()
        assert notifier.notify("RELOADING=1\nMONOTONIC_USEC=42")
    assert drain(receiver) == [
        "READY=1",
        "STATUS=trading BTCUSDT",
        "WATCHDOG=1",
        "STOPPING=1",
        "RELOADING=1\nMONOTONIC_USEC=42",
    ]


def test_extend_timeout_sends_microseconds(receiver: socket.socket) -> None:
    with SystemdNotifier() as notifier:
        assert notifier.extend_timeout(121.5)
        with pytest.raises(ValueError, match="must be positive, got 0"):
            notifier.extend_timeout(0)
    assert drain(receiver) == ["EXTEND_TIMEOUT_USEC=121500000"]


def test_status_newlines_cannot_inject_assignments(receiver: socket.socket) -> None:
    with SystemdNotifier() as notifier:
        notifier.status("degraded\nREADY=1")
    assert drain(receiver) == ["STATUS=degraded READY=1"]


def test_socket_is_non_blocking(receiver: socket.socket) -> None:
    with SystemdNotifier() as notifier:
        notifier.ready()
        assert notifier._sock is not None
        assert notifier._sock.gettimeout() == 0.0


def test_abstract_namespace(clean_env: pytest.MonkeyPatch) -> None:
    name = f"depthcharge-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        clean_env.setenv("NOTIFY_SOCKET", "@" + name)
        with SystemdNotifier() as notifier:
            assert notifier.ready()
            assert notifier.status("abstract")
        assert sock.recv(4096) == b"READY=1"
        assert sock.recv(4096) == b"STATUS=abstract"


def test_no_op_without_notify_socket(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("WATCHDOG_USEC", "1000000")
    with capture_logs() as logs, SystemdNotifier() as notifier:
        assert not notifier.enabled
        assert not notifier.ready()
        assert not notifier.status("x")
        assert not notifier.watchdog()
        assert not notifier.stopping()
        assert notifier.watchdog_interval_s() is None
        assert notifier._sock is None
    assert logs == []


async def test_watchdog_loop_returns_at_once_without_notify_socket(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("WATCHDOG_USEC", "1000000")
    with SystemdNotifier() as notifier:
        await asyncio.wait_for(notifier.watchdog_loop(asyncio.Event()), timeout=1)


def test_relative_notify_socket_is_ignored(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NOTIFY_SOCKET", "relative/notify")
    with capture_logs() as logs, SystemdNotifier() as notifier:
        assert not notifier.enabled
        assert not notifier.ready()
    assert [(e["log_level"], e["notify_socket"]) for e in logs] == [("warning", "relative/notify")]


def test_failed_send_is_logged_once_and_not_raised(short_dir: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NOTIFY_SOCKET", str(short_dir / "nobody-listens"))
    with capture_logs() as logs, SystemdNotifier() as notifier:
        assert not notifier.ready()
        assert not notifier.watchdog()
        assert not notifier.status("x")
    assert len(logs) == 1
    assert logs[0]["log_level"] == "warning" and "nobody-listens" in logs[0]["notify_socket"]


def test_full_receiver_queue_never_blocks(receiver: socket.socket) -> None:
    # Nobody reads `receiver`: its queue fills up and a blocking send would hang here.
    started = time.monotonic()
    with capture_logs() as logs, SystemdNotifier() as notifier:
        sent = [notifier.watchdog() for _ in range(5000)]
    assert time.monotonic() - started < 5
    assert sent[0]
    assert not all(sent), "the receive queue never filled; the test proves nothing"
    assert len(logs) == 1


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("1000000", None, 0.5),
        ("30000000", "self", 15.0),
        ("30000000", "other", None),
        ("30000000", "garbage", None),
        (None, None, None),
        ("", None, None),
        ("0", None, None),
        ("-5", None, None),
        ("thirty", None, None),
    ],
)
def test_watchdog_interval(
    receiver: socket.socket,
    clean_env: pytest.MonkeyPatch,
    usec: str | None,
    pid: str | None,
    expected: float | None,
) -> None:
    if usec is not None:
        clean_env.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        clean_env.setenv(
            "WATCHDOG_PID", {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(pid, pid)
        )
    with SystemdNotifier() as notifier:
        assert notifier.watchdog_interval_s() == expected


async def test_watchdog_loop_pings_at_half_the_interval_and_stops(
    receiver: socket.socket, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s
    clean_env.setenv("WATCHDOG_PID", str(os.getpid()))
    loop = asyncio.get_running_loop()
    receiver.setblocking(False)
    arrivals: list[float] = []

    async def collect() -> None:
        while True:
            assert await loop.sock_recv(receiver, 4096) == b"WATCHDOG=1"
            arrivals.append(loop.time())

    collector = asyncio.create_task(collect())
    stop = asyncio.Event()
    with SystemdNotifier() as notifier:
        assert notifier.watchdog_interval_s() == pytest.approx(0.1)
        pinger = asyncio.create_task(notifier.watchdog_loop(stop))
        await asyncio.sleep(0.55)
        stop.set()
        stopped_at = loop.time()
        await asyncio.wait_for(pinger, timeout=1)
        assert loop.time() - stopped_at < 0.05, "the loop must stop on the event, not at the next tick"
        await asyncio.sleep(0.25)  # no ping after the stop
    collector.cancel()
    with pytest.raises(asyncio.CancelledError):
        await collector

    # Pings at t = 0, 0.1, ..., 0.5: six, give or take one for a slow machine.
    assert 5 <= len(arrivals) <= 7
    assert all(t <= stopped_at for t in arrivals)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(0.08 <= gap <= 0.2 for gap in gaps), gaps


async def test_watchdog_loop_with_event_already_set_sends_nothing(
    receiver: socket.socket, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("WATCHDOG_USEC", "200000")
    stop = asyncio.Event()
    stop.set()
    with SystemdNotifier() as notifier:
        await asyncio.wait_for(notifier.watchdog_loop(stop), timeout=1)
    assert drain(receiver) == []


def test_unit_file_has_no_duplicate_keys() -> None:
    # configparser below runs with strict=False (systemd allows repeated keys), which would hide a
    # key set twice by mistake: the last one silently wins, here as in systemd for most settings.
    seen: set[tuple[str, str]] = set()
    section = ""
    for raw in UNIT_FILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key = line.split("=", 1)[0].strip()
        assert (section, key) not in seen, f"{key} set twice in {section}"
        seen.add((section, key))


def test_unit_file() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None, allow_no_value=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(UNIT_FILE, encoding="utf-8")
    service = parser["Service"]

    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["WatchdogSec"] == "30"
    assert service["Restart"] == "on-failure"
    assert service["RestartSec"] == "5"
    assert service["TimeoutStopSec"] == "60"
    assert service["KillSignal"] == "SIGTERM"
    assert service["User"] == "depthcharge"
    assert service["WorkingDirectory"] == "/opt/depthcharge"
    assert service["EnvironmentFile"] == "-/opt/depthcharge/.env"
    assert service["ExecStart"] == "/opt/depthcharge/.venv/bin/depthcharge daemon"
    assert {
        key: service[key]
        for key in (
            "NoNewPrivileges",
            "ProtectSystem",
            "ReadWritePaths",
            "ProtectHome",
            "PrivateTmp",
            "PrivateDevices",
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectControlGroups",
            "RestrictAddressFamilies",
            "RestrictNamespaces",
            "LockPersonality",
            "MemoryDenyWriteExecute",
            "SystemCallArchitectures",
            "CapabilityBoundingSet",
            "UMask",
        )
    } == {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ReadWritePaths": "/opt/depthcharge/var",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "",
        "UMask": "0027",
    }
    assert parser["Install"]["WantedBy"] == "multi-user.target"
