"""The processes the soak owns: its own PostgreSQL server (so that it can restart it) and the daemon, a real
`python -m depthcharge daemon` process (so that SIGKILL is real), told apart by incarnation.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from psycopg import sql

from depthcharge.child_process import stop_child
from infra.db import migrate
from infra.db.connection import Database
from infra.db.embedded import EmbeddedPostgres

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0


class SoakDatabase:
    """An embedded PostgreSQL server in `pgdata` with one fresh database per run, restartable mid-run."""

    def __init__(self, pgdata: Path) -> None:
        # The server's Unix socket lives in its data directory, whose path must stay under 107 bytes.
        self.pgdata = pgdata.resolve()
        if len(str(self.pgdata)) > 80:
            raise ValueError(
                f"--pgdata {self.pgdata} is too long for the server's Unix socket path (at most 80 characters)"
            )
        self.server: EmbeddedPostgres | None = None
        self.db: Database | None = None
        self.restarts = 0

    def start(self, name: str, *, retention_days: int = 30) -> Database:
        """Start the server, create database `name` (dropping a leftover of that name) and migrate it."""
        self.server = EmbeddedPostgres(self.pgdata).start()
        admin = Database(self.server.uri("postgres"), "embedded", self.server)
        with admin.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.db = admin.with_dbname(name)
        migrate.upgrade(self.db, retention_days=retention_days)
        return self.db

    def restart(self, down_s: float = 0.0) -> None:
        """Restart the server: `pg_ctl stop -m fast` (every connection, the daemon's included, is cut), `down_s`
        seconds without a server, then started again as pgserver starts it (its socket directory and log)."""
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        server = self._require()
        pg = server._server
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pg.pgdata, user=pg.system_user, timeout=60)
        time.sleep(down_s)
        server.resume()
        self.restarts += 1

    def drop(self) -> None:
        """Drop the run's database."""
        if self.db is None:
            return
        admin = self.db.with_dbname("postgres")
        with admin.connect(autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.db.dbname))
            )

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def _require(self) -> EmbeddedPostgres:
        if self.server is None:
            raise RuntimeError("the soak's database server is not started")
        return self.server


class DaemonProcess:
    """One incarnation of the daemon, with a systemd notify socket to learn when it is ready."""

    def __init__(self, name: str, env: dict[str, str], run_dir: Path, sock_dir: Path) -> None:
        """`sock_dir` holds the notify socket: a short path (a Unix socket's is limited to 107 bytes)."""
        self.name = name
        self.sock_path = sock_dir / f"{name}.notify"
        self.sock_path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.sock_path))
        self.sock.setblocking(False)
        self.output = run_dir / f"{name}.out"
        self._out = self.output.open("wb")
        full = {**env, "NOTIFY_SOCKET": str(self.sock_path)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "depthcharge", "daemon"],
            env=full,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        self.started = time.monotonic()
        self.ready_after_s: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def wait_ready(self, within: float = READY_TIMEOUT_S) -> None:
        """Return once the daemon sent READY=1; raise, with its last output, if it ended or took too long."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"daemon {self.name} exited {self.proc.returncode} before it was ready:\n{self.tail()}"
                )
            try:
                if "READY=1" in self.sock.recv(4096).decode():
                    self.ready_after_s = time.monotonic() - self.started
                    return
            except BlockingIOError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"daemon {self.name} not ready within {within:g} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)

    async def stop(self, within: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait for the exit status (SIGKILL after `within` seconds)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait_exit(within)

    async def wait_exit(self, within: float = STOP_TIMEOUT_S) -> int:
        """The exit status once the daemon has ended (a signal was sent already); SIGKILL after `within` s."""
        if not await asyncio.to_thread(stop_child, self.proc, within, signalled=True):
            raise RuntimeError(f"daemon {self.name} did not stop within {within:g} s:\n{self.tail()}")
        return self.proc.returncode

    def close(self) -> None:
        """Kill if still running, and release the socket and the output file."""
        self.kill()
        self.proc.wait()
        self.sock.close()
        self.sock_path.unlink(missing_ok=True)
        self._out.close()

    def tail(self, chars: int = 3000) -> str:
        self._out.flush()
        return self.output.read_text(errors="replace")[-chars:]


def daemon_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The soak's own environment minus what would steer the daemon elsewhere (an operator's .env values)."""
    env = dict(os.environ if base is None else base)
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "DATABASE_URL", "MODELS_DIR", "LOG_DIR", "SPOOL_DIR"):
        env.pop(name, None)
    return env
