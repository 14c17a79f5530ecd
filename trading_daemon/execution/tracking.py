"""Tracking: the private stream feeds the ledger; while it is down, REST polling does.

`order`, `execution`, `position` and `wallet` messages are parsed with the client's own parsers and applied
in arrival order (orders to their state machines, executions as fills by execId, positions and the wallet to
the account view). The private stream does not replay what was missed (docs/exchange_protocol.md §6.3), so:

* on a disconnect the account is put on hold (no new entries) and a poller starts: every
  ORDER_POLL_INTERVAL_S it reads open orders, looks up the live orders that left the list, and imports
  executions, through the same ledger;
* on the reconnect (re-authenticated and resubscribed by the socket itself) the poller stops and a full
  reconciliation runs; its success lifts the hold.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from schemas.enums import ExecType
from schemas.trading import Fill
from trading_daemon.exchange.messages import BybitWsExecutions, BybitWsOrders, BybitWsPositions, BybitWsWallet
from trading_daemon.exchange.parsing import parse_fills, parse_order, parse_position, parse_wallet
from trading_daemon.exchange.websocket import BybitPrivateWebSocket
from trading_daemon.execution.ledger import HOLD as LEDGER_HOLD
from trading_daemon.execution.ledger import Ledger
from trading_daemon.execution.reconciliation import Reconciler

log = structlog.get_logger(__name__)

HOLD = "private_stream"
DEGRADED = LEDGER_HOLD


class ExecutionTracker:
    """Subscribes the private topics and keeps the ledger current, by stream or by polling."""

    def __init__(
        self, ws: BybitPrivateWebSocket, ledger: Ledger, reconciler: Reconciler, *, poll_interval_s: float
    ) -> None:
        self.ws = ws
        self.ledger = ledger
        self.reconciler = reconciler
        self.poll_interval_s = poll_interval_s
        self.messages = 0
        self.polls = 0
        self.reconnects = 0
        self._poller: asyncio.Task[None] | None = None
        self._reconciling: asyncio.Task[None] | None = None
        self._repair: asyncio.Task[None] | None = None
        ws.on_disconnect = self.on_disconnect
        ws.on_reconnect = self.on_reconnect
        ledger.on_failure = self._repair_soon

    async def start(self) -> None:
        """Connect (authenticate), subscribe the private topics."""
        await self.ws.subscribe_private(
            on_order=self._on_order, on_execution=self._on_execution, on_position=self._on_position,
            on_wallet=self._on_wallet,
        )  # fmt: skip
        if not self.ws.connected:
            self.ledger.account.hold(HOLD, "private stream not connected yet")
            await self.ws.start()
        self.ledger.account.release(HOLD)

    async def close(self) -> None:
        for task in (self._poller, self._reconciling, self._repair):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.ws.close()

    # --- stream handlers ----------------------------------------------------------------------------

    async def _on_order(self, msg: BybitWsOrders) -> None:
        self.messages += 1
        try:
            for raw in msg.data:
                if raw.category and raw.category != "linear":
                    continue
                await self.ledger.apply_report(parse_order(raw), source="stream")
        except Exception as exc:
            self._degraded("order", exc)

    async def _on_execution(self, msg: BybitWsExecutions) -> None:
        self.messages += 1
        try:
            for fill in parse_fills(msg.data):  # execTypes that are neither fills nor funding are left out
                await self._know_order_of(fill)
                await self.ledger.apply_fill(fill, source="stream")
        except Exception as exc:
            self._degraded("execution", exc)

    async def _know_order_of(self, fill: Fill) -> None:
        """Import the order of a fill the ledger does not know before the fill, so that the fill belongs to
        it and closes its position for its reason. The exchange's own orders (a position's TP/SL that fired,
        one placed by hand) are unknown until their `order` report, which comes after their executions."""
        if fill.exec_type is ExecType.FUNDING or not fill.exchange_order_id:
            return
        if await self.ledger.get(fill.client_order_id or fill.exchange_order_id) is not None:
            return
        found = await self.reconciler.rest.find_order(fill.symbol, order_id=fill.exchange_order_id)
        if found is not None:
            await self.ledger.apply_report(found, source="stream")

    def _degraded(self, topic: str, exc: Exception) -> None:
        """An event could not be written (the database is down): the state is uncertain until a
        reconciliation succeeds, which is retried until it does (the stream does not repeat events)."""
        log.error(
            "private stream event not applied: reconciling until it succeeds", topic=topic, error=str(exc)
        )
        self.ledger.account.hold(DEGRADED, f"a private {topic} event could not be applied: {exc}")
        self._repair_soon()

    def _repair_soon(self) -> None:
        if self._repair is None or self._repair.done():
            self._repair = asyncio.get_running_loop().create_task(self._reconcile_until_ok(), name="repair")

    async def _reconcile_until_ok(self) -> None:
        # The reconciler lifts the hold once a pass reloaded the ledger and nothing failed meanwhile.
        while DEGRADED in self.ledger.account.holds:
            await asyncio.sleep(self.poll_interval_s)
            await self.reconciler.reconcile("repair")

    def _on_position(self, msg: BybitWsPositions) -> None:
        self.messages += 1
        positions = self.ledger.account.exchange_positions
        for raw in msg.data:
            report = parse_position(raw)
            seen = positions.get(report.symbol)
            if seen is None or report.updated_ms >= seen.updated_ms:
                positions[report.symbol] = report

    def _on_wallet(self, msg: BybitWsWallet) -> None:
        self.messages += 1
        if msg.data:
            self.ledger.account.wallet = parse_wallet(msg.data[0])

    # --- disconnects --------------------------------------------------------------------------------

    def on_disconnect(self) -> None:
        self.ledger.account.hold(HOLD, "private stream down: order and fill events may be missed")
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name="execution-poll")

    def on_reconnect(self) -> None:
        self.reconnects += 1
        if self._poller is not None:
            self._poller.cancel()
        # Off the socket's supervisor: the pass may wait out recv windows.
        self._reconciling = asyncio.get_running_loop().create_task(
            self._after_reconnect(), name="reconcile-reconnect"
        )

    async def _after_reconnect(self) -> None:
        report = await self.reconciler.reconcile("reconnect")
        if report.success and self.ws.connected:
            self.ledger.account.release(HOLD)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                await self.reconciler.poll()
                self.polls += 1
            except Exception as exc:  # the next poll tries again; the hold stays
                log.warning("REST polling of orders and fills failed", error=str(exc))
