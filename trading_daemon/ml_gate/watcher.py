"""Follows model promotions: LISTEN `model_promoted` on a dedicated connection, polling as the fallback.

The registry's promotion sends `NOTIFY model_promoted` on commit (infra.db.repositories.model_versions);
the watcher turns every notification into `MLGate.reload`. A notification reaches only sessions listening
when it is sent, so each time LISTEN becomes active (at start and after a reconnect) the gate reloads too,
catching any promotion missed meanwhile; and a poll every ML_POLL_INTERVAL_S reloads regardless, so a
promotion is followed even while the listening connection is down (or a notification is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog

from trading_daemon.errors import Backoff, classify
from trading_daemon.ml_gate.gate import MLGate

log = structlog.get_logger(__name__)

Listen = Callable[[Callable[[], Awaitable[None]]], AsyncIterator[str]]


class PromotionWatcher:
    """Runs the listen loop and the poll loop until `stop` is set (`run`)."""

    def __init__(self, gate: MLGate, listen: Listen | None, *, poll_interval_s: float) -> None:
        """`listen(on_listening)` yields promotion payloads (e.g. `infra.db.notifications.listen` bound to
        the database and channel); None polls only."""
        self.gate = gate
        self.listen = listen
        self.poll_interval_s = poll_interval_s
        self.listening = False
        self.notifications = 0
        self.polls = 0
        self.reconnects = 0

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self._poll(stop), name="ml-gate-poll")]
        if self.listen is not None:
            tasks.append(asyncio.create_task(self._listen(stop), name="ml-gate-listen"))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _poll(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_interval_s)
            if stop.is_set():
                return
            self.polls += 1
            await self.gate.reload("poll")

    async def _listen(self, stop: asyncio.Event) -> None:
        assert self.listen is not None
        backoff = Backoff(0.5, 30.0)
        failures = 0

        async def on_listening() -> None:
            nonlocal failures
            self.listening, failures = True, 0
            log.info("listening for model promotions")
            await self.gate.reload("listen")  # whatever was promoted while nobody listened

        while not stop.is_set():
            wait = backoff.initial_s
            try:
                async for payload in self.listen(on_listening):
                    self.notifications += 1
                    await self.gate.reload(f"model_promoted {payload}")
            except Exception as exc:
                decision = classify(exc)
                wait = decision.wait_s(backoff.delay(failures))
                failures += 1
                self.reconnects += 1
                log.warning(
                    "model promotion listener lost; polling meanwhile", kind=decision.kind.value,
                    error=str(exc), retry_in_s=round(wait, 2),
                )  # fmt: skip
            finally:
                self.listening = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
