"""What both WebSocket endpoints share: a connection with an id and an outgoing queue drained by its own
writer task, so producers (the driver, REST handlers causing trades) never wait on a slow socket and
messages keep their order per connection; and :meth:`QueuedSocket.dispatch`, the one place a request
frame is decoded and handed to its op handler.

Bad input never closes a socket: a frame that is not a JSON object this exchange accepts (see
:func:`exchange_sim.wire.decode_json`) gets ``Failed to decode incoming data: …``, and an exception in an
op handler gets a ``success: false`` reply and an ERROR log with the traceback (it is a bug of the paper
exchange) — the connection carries on with the next frame.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import structlog
from aiohttp import web

from exchange_sim.errors import ExchangeError
from exchange_sim.wire import JsonError, decode_json, shown

log = structlog.get_logger(__name__)

# ``handle(request, op, req_id)``: ``op`` is ``""`` unless a string, ``req_id`` as the reply echoes it.
RequestHandler = Callable[[dict[str, Any], str, str | None], None]


class QueuedSocket:
    """One WebSocket connection and its outgoing queue."""

    # The ``req_id`` of a reply to a request that sent none: the public stream echoes ``""``, the private
    # one leaves the field out (docs/exchange_protocol.md).
    missing_req_id: ClassVar[str | None] = None

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

    def reply(self, op: str, req_id: str | None, success: bool, ret_msg: str) -> dict[str, Any]:
        """A control reply: ``success``, ``ret_msg``, ``conn_id``, ``req_id`` (when there is one), ``op``."""
        out: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": self.conn_id}
        if req_id is not None:
            out["req_id"] = req_id
        out["op"] = op
        return out

    def dispatch(self, text: str, handle: RequestHandler) -> None:
        """Decode one text frame and hand the request to ``handle``; every failure becomes a reply."""
        try:
            request = decode_json(text)
            if not isinstance(request, dict):
                raise JsonError("a request must be a JSON object")
        except JsonError as exc:
            self.send(self.reply("", self.missing_req_id, False, f"Failed to decode incoming data: {exc}"))
            return
        op = request.get("op")
        op_text = op if isinstance(op, str) else ""
        req_id = request.get("req_id")
        if req_id is None:
            req_text = self.missing_req_id
        else:
            req_text = req_id if isinstance(req_id, str) else str(req_id)
        try:
            handle(request, op_text, req_text)
        except ExchangeError as exc:
            self.send(self.reply(op_text, req_text, False, exc.ret_msg))
        except Exception as exc:
            log.exception("ws_request_failed", conn_id=self.conn_id, op=op_text, error=type(exc).__name__)
            self.send(self.reply(op_text, req_text, False, f"error:internal error ({type(exc).__name__})"))

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


def shown_topic(topic: object) -> str:
    """A topic as a failure reply names it: a string as given, another JSON value (or a long one) cut short."""
    return topic if isinstance(topic, str) and len(topic) <= 100 else shown(topic)
