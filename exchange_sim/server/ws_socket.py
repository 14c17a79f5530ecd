"""What both WebSocket endpoints share: a connection with an id and an outgoing queue drained by its own
writer task, so producers (the driver, REST handlers causing trades) never wait on a slow socket and
messages keep their order per connection."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import web


class QueuedSocket:
    """One WebSocket connection and its outgoing queue."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.conn_id = str(uuid.uuid4())
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.last_fault_roll = time.monotonic()

    def send(self, message: dict[str, Any]) -> None:
        """Queue ``message`` for sending."""
        self.queue.put_nowait(json.dumps(message, separators=(",", ":")))

    def close(self) -> None:
        """Ask the writer to close the socket after what is queued."""
        self.queue.put_nowait(None)

    async def writer(self) -> None:
        """Send queued messages until told to close."""
        while True:
            text = await self.queue.get()
            if text is None or self.ws.closed:
                await self.ws.close()
                return
            try:
                await self.ws.send_str(text)
            except ConnectionError:
                return
