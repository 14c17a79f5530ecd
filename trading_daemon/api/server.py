"""The API served inside the daemon's event loop by uvicorn (no second process, no thread).

uvicorn's own signal handlers stay off: the daemon's service owns SIGTERM/SIGINT and stops the server with
everything else. Its access log is off too: the daemon's structured log records what matters (control
actions are audited), and request lines would only repeat them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import structlog
import uvicorn
from fastapi import FastAPI

log = structlog.get_logger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon's service handles SIGTERM/SIGINT and stops the server itself


class ApiServer:
    """`await start()` binds (raises naming the address if it cannot); `await stop()` drains and closes."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="websockets-sansio",
        )
        self.server = _Server(self.config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets if self.server.servers else []
        return int(sockets[0].getsockname()[1]) if sockets else self.config.port

    @property
    def url(self) -> str:
        host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        # Bound here, not by uvicorn: uvicorn answers a bind error with sys.exit, which would end the daemon.
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError as exc:
            sock.close()
            raise OSError(
                f"the API cannot listen on {self.config.host}:{self.config.port} (API_HOST, API_PORT): "
                f"{exc.strerror}"
            ) from exc
        sock.set_inheritable(True)
        self._task = asyncio.create_task(self.server.serve(sockets=[sock]), name="api-server")
        while not self.server.started:
            if self._task.done():
                raise OSError(
                    f"the API server on {self.url} ended during start-up"
                ) from self._task.exception()
            await asyncio.sleep(0.02)
        log.info("api listening", url=self.url)

    async def stop(self) -> None:
        if self._task is None:
            return
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 10)
        except TimeoutError:
            self.server.force_exit = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._task, 5)
        self._task = None
