"""The API inside the daemon: authentication, the WebSocket hub and its publishers, the HTTP server.

api = await ApiRuntime.open(ctx)   users and signing key ready, the hub fed, the server listening
api.started(stop)                  the daemon finished start-up: ready, publishers polling until `stop`
await api.close()                  server drained, publishers stopped, the API's pool closed
"""

from __future__ import annotations

import asyncio
import contextlib

from trading_daemon.api.app import create_app
from trading_daemon.api.auth import AuthService
from trading_daemon.api.context import DaemonContext
from trading_daemon.api.hub import Hub
from trading_daemon.api.publishers import BookPublisher, run_publishers
from trading_daemon.api.server import ApiServer


class ApiRuntime:
    def __init__(self, context: DaemonContext, auth: AuthService, server: ApiServer) -> None:
        self.context = context
        self.auth = auth
        self.server = server
        self._publishers: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, ctx: DaemonContext) -> ApiRuntime:
        """Raises naming the setting when the API cannot start (a short SECRET_KEY, a taken API_PORT)."""
        try:
            ctx.hub = Hub(ctx.api.ws_client_queue, metrics=ctx.metrics)
            ctx.feed.sinks.append(BookPublisher(ctx.hub))
            auth = AuthService(ctx.api, ctx.pool)
            await auth.open()
            server = ApiServer(create_app(ctx, auth), ctx.api.host, ctx.api.port)
            await server.start()
        except BaseException:
            await ctx.pool.close()
            raise
        return cls(ctx, auth, server)

    @property
    def url(self) -> str:
        return self.server.url

    def started(self, stop: asyncio.Event) -> None:
        self.context.ready = True
        self._publishers = asyncio.get_running_loop().create_task(
            run_publishers(self.context, stop), name="api-publishers"
        )

    async def close(self) -> None:
        await self.server.stop()
        if self._publishers is not None:
            self._publishers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publishers
        await self.context.pool.close()
