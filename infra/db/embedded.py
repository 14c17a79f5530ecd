"""The embedded PostgreSQL server (pgserver) used when no DATABASE_URL is set.

Its data lives in `var/pg` and persists across runs. pgserver counts the processes holding a handle
and stops the server when the last one exits, so the daemon, Dagster and the CLI can share it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import structlog

from infra.db.errors import DatabaseUnavailable

log = structlog.get_logger(__name__)


class EmbeddedPostgres:
    """A handle on the pgserver instance that owns `pgdata`.

    pgserver keeps one server object per data directory and process, and its cleanup stops the server
    for the whole process; handles are therefore counted here, so that closing one (the daemon's, say)
    leaves the server up for another handle in the same process (the demo's).
    """

    _handles: ClassVar[dict[Path, int]] = {}

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = Path(pgdata).resolve()
        self._server: Any = None

    def start(self) -> EmbeddedPostgres:
        try:
            with warnings.catch_warnings():
                # platformdirs warns that XDG_RUNTIME_DIR is unset under CI and systemd; pgserver then
                # uses /tmp/runtime-<uid> for its lock, the same path in every process, which is all we need.
                warnings.simplefilter("ignore")
                import pgserver

            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            self._server = pgserver.get_server(  # type: ignore[attr-defined]
                self.pgdata, cleanup_mode="stop"
            )
        except Exception as exc:
            raise DatabaseUnavailable(
                f"could not start the embedded PostgreSQL in {self.pgdata}: {exc}. "
                f"See {self.pgdata / 'log'} for the server's own log, or set DATABASE_URL."
            ) from exc
        EmbeddedPostgres._handles[self.pgdata] = EmbeddedPostgres._handles.get(self.pgdata, 0) + 1
        log.info("embedded postgres ready", pgdata=str(self.pgdata))
        return self

    def uri(self, database: str) -> str:
        if self._server is None:
            raise DatabaseUnavailable("the embedded PostgreSQL is not started")
        return str(self._server.get_uri(database))

    @property
    def socket_dir(self) -> Path:
        if self._server is None:
            raise DatabaseUnavailable("the embedded PostgreSQL is not started")
        return Path(self._server.get_postmaster_info().socket_dir)

    def halt(self) -> None:
        """Stop the server now, as a crash would (`pg_ctl stop -m immediate`: no shutdown checkpoint to wait
        for, recovery at the next start), whatever other handles hold it.

        `stop` releases a handle and pgserver stops the server only when the last handle of every process
        is gone, so a handle another process left behind keeps it up; an outage drill needs it down.
        """
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        server = self._require()
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=60)

    def resume(self) -> None:
        """Start the server again after `halt`, with the socket directory and log pgserver chose."""
        self._require().ensure_postgres_running()

    def _require(self) -> Any:
        if self._server is None:
            raise DatabaseUnavailable("the embedded PostgreSQL is not started")
        return self._server

    def stop(self) -> None:
        """Release this handle; the server stops when no handle of any process holds it any more."""
        if self._server is None:
            return
        left = EmbeddedPostgres._handles.get(self.pgdata, 1) - 1
        if left <= 0:
            EmbeddedPostgres._handles.pop(self.pgdata, None)
            self._server.cleanup()
        else:
            EmbeddedPostgres._handles[self.pgdata] = left
        self._server = None
