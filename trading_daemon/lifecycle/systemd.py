"""The systemd notify protocol (sd_notify(3), sd_watchdog_enabled(3)) without external dependencies.

Under `Type=notify` systemd passes the path of a datagram socket in `NOTIFY_SOCKET`; the service
sends newline-separated `KEY=VALUE` assignments to it: `READY=1` once it is serving, `STATUS=...`
for `systemctl status`, `STOPPING=1` when shutdown begins and `WATCHDOG=1` as the keep-alive ping
when `WatchdogSec=` is set (systemd then exports `WATCHDOG_USEC`, and `WATCHDOG_PID` naming the
process meant to ping).

Everything here is a silent no-op when `NOTIFY_SOCKET` is unset, so the daemon runs unchanged in
a terminal, a container or tests. Sending never blocks the event loop and never raises: the
notifications are advisory, and a full or vanished socket must not take the trading loop down.

    notifier = SystemdNotifier()
    watchdog = asyncio.create_task(notifier.watchdog_loop(stop_event))
    ...  # start feeds and workers
    notifier.ready()
    ...
    notifier.stopping()
    stop_event.set()
    await watchdog
    notifier.close()
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping
from types import TracebackType

import structlog

__all__ = ["SystemdNotifier"]

_log = structlog.get_logger(__name__)


class SystemdNotifier:
    """Sends sd_notify messages to the socket named by `NOTIFY_SOCKET`.

    The environment is read once, at construction (pass `environ` to use another mapping than
    `os.environ`). The socket is opened lazily on the first send and closed by `close()` or by
    leaving a `with` block.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._env: Mapping[str, str] = env
        self._socket_name = env.get("NOTIFY_SOCKET", "")
        self._address: str | None = self._parse_address(self._socket_name)
        self._sock: socket.socket | None = None
        # A daemon whose notify socket is broken would otherwise log a failure every watchdog
        # period for the rest of its life; the first failure says everything there is to say.
        self._failure_logged = False

    @staticmethod
    def _parse_address(raw: str) -> str | None:
        """The AF_UNIX address for `raw`, or None when notification is off or unsupported."""
        if not raw:
            return None
        if raw.startswith("@"):
            # Abstract namespace: the kernel's name starts with a NUL byte, which cannot be
            # carried in an environment variable, so systemd writes "@" instead.
            return "\0" + raw[1:]
        if raw.startswith("/"):
            return raw
        # systemd only ever passes absolute paths or "@names" for AF_UNIX (and "vsock:" for VMs,
        # which this daemon never runs under); anything else is misconfiguration, not worth dying for.
        _log.warning(
            "NOTIFY_SOCKET is neither an absolute path nor @abstract, notifications off", notify_socket=raw
        )
        return None

    @property
    def enabled(self) -> bool:
        """Whether a notify socket is configured."""
        return self._address is not None

    def notify(self, message: str) -> bool:
        """Send `message` (one or more `KEY=VALUE` lines) as one datagram; True if it was sent."""
        if self._address is None:
            return False
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Non-blocking: when systemd's receive queue is full a blocking send would stall
                # the whole event loop; dropping one notification is harmless (the next ping or
                # status update supersedes it).
                sock.setblocking(False)
                self._sock = sock
            self._sock.sendto(message.encode("utf-8"), self._address)
        except OSError as exc:
            if not self._failure_logged:
                self._failure_logged = True
                _log.warning(
                    "systemd notification failed, further failures are not logged",
                    notify_socket=self._socket_name,
                    error=str(exc),
                )
            return False
        return True

    def ready(self) -> bool:
        """Tell systemd start-up is complete (`READY=1`); `systemctl start` returns after this."""
        return self.notify("READY=1")

    def status(self, text: str) -> bool:
        """Set the one-line status shown by `systemctl status` (`STATUS=...`)."""
        # The protocol is newline-separated assignments: a newline in the text would end the
        # status early and let the rest be read as another assignment (e.g. "READY=1").
        return self.notify("STATUS=" + " ".join(text.splitlines()))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for `seconds` more before systemd gives up on the current phase (`EXTEND_TIMEOUT_USEC`).

        Sent while start-up waits for the venue, so `TimeoutStartSec=` does not kill a daemon that is
        patiently retrying; it takes effect only once that timeout would otherwise have passed.
        """
        if seconds <= 0:
            raise ValueError(f"a timeout extension must be positive, got {seconds} s")
        return self.notify(f"EXTEND_TIMEOUT_USEC={round(seconds * 1_000_000)}")

    def stopping(self) -> bool:
        """Tell systemd shutdown has begun (`STOPPING=1`)."""
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        """Send one keep-alive ping (`WATCHDOG=1`)."""
        return self.notify("WATCHDOG=1")

    def watchdog_interval_s(self) -> float | None:
        """The recommended ping period in seconds, or None when the watchdog is off for us.

        That is half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) recommends, so one late ping
        does not get the service killed. None when notification is off, when `WATCHDOG_USEC` is
        missing, malformed or not positive, or when `WATCHDOG_PID` is set to another process
        (the variable was inherited from a parent the watchdog is really meant for).
        """
        if self._address is None:
            return None
        try:
            usec = int(self._env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        if usec <= 0:
            return None
        pid_raw = self._env.get("WATCHDOG_PID")
        if pid_raw is not None:
            try:
                pid = int(pid_raw)
            except ValueError:
                return None
            if pid != os.getpid():
                return None
        return usec / 2 / 1_000_000

    async def watchdog_loop(self, stop_event: asyncio.Event) -> None:
        """Ping the watchdog every `watchdog_interval_s()` until `stop_event` is set.

        Returns at once when the watchdog is off. Runs on the event loop on purpose: if the loop
        is wedged the pings stop and systemd restarts the daemon, which is the point of a watchdog.
        """
        interval = self.watchdog_interval_s()
        if interval is None:
            return
        while not stop_event.is_set():
            self.watchdog()
            try:
                await asyncio.wait_for(stop_event.wait(), timeout=interval)
            except TimeoutError:
                continue

    def close(self) -> None:
        """Close the socket, if one was opened. Further sends open a new one."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SystemdNotifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
