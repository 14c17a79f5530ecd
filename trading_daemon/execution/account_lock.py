"""Single trader: a Postgres advisory lock per exchange account, held by the one daemon that trades it.

The lock is session-level, on a connection of its own named after its holder (`application_name`
"depthcharge daemon pid=… host=…"), so a second daemon can say who holds it: `pg_locks` joined with
`pg_stat_activity`. A second daemon waits up to ACCOUNT_LOCK_WAIT_S and then exits naming the holder
(`AccountLocked`, a configuration-class error: exit status 2, not restarted by systemd).

A session lock dies with its connection. If the database restarts or the connection drops, the daemon has
lost the right to trade: `watch` tells execution (`on_lost` — entries are refused), keeps trying to take
the lock back, and says so when it has (`on_regained`, after which execution reconciles).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import structlog
from psycopg.rows import dict_row

from infra.db.connection import Database
from trading_daemon.lifecycle.startup import StartupError

log = structlog.get_logger(__name__)

_NAMESPACE = "depthcharge:account:"


def lock_key(account: str) -> int:
    """The signed 64-bit advisory lock key of `account` (stable across processes and versions)."""
    return int.from_bytes(hashlib.sha256((_NAMESPACE + account).encode()).digest()[:8], "big", signed=True)


def account_key(rest_url: str, api_key: str | None) -> str:
    """An account's identity: the venue and the API key (never the secret)."""
    return f"{rest_url.rstrip('/')}#{api_key or '-'}"


class AccountLocked(StartupError):
    """Another daemon holds this account's lock (exit status 2: restarting would not help)."""

    def __init__(self, account: str, holder: str) -> None:
        self.account, self.holder = account, holder
        super().__init__(
            "account lock",
            RuntimeError(f"account {account} is traded by another daemon: {holder}"),
            "stop that daemon first, or set ACCOUNT_LOCK_WAIT_S to wait for it",
        )


class AccountLock:
    """The advisory lock of one account on a dedicated connection."""

    def __init__(self, db: Database, account: str, *, holder: str | None = None) -> None:
        self.db = db
        self.account = account
        self.key = lock_key(account)
        self.holder = holder or f"depthcharge daemon pid={os.getpid()} host={socket.gethostname()}"
        self._conn: psycopg.AsyncConnection[Any] | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.closed

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self.db.conninfo,
            autocommit=True,
            application_name=self.holder[:63],
            connect_timeout=self.db.connect_timeout_s,
            row_factory=dict_row,
        )

    async def try_acquire(self) -> bool:
        """Take the lock if it is free; False when another session holds it."""
        conn = await self._connect()
        try:
            row = await (await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (self.key,))).fetchone()
        except BaseException:
            await conn.close()
            raise
        if row is not None and row["ok"]:
            self._conn = conn
            return True
        await conn.close()
        return False

    async def acquire(self, *, wait_s: float = 0.0, poll_s: float = 0.5) -> None:
        """Take the lock, waiting up to `wait_s`; raises `AccountLocked` naming the holder."""
        deadline = time.monotonic() + wait_s
        announced = False
        while not await self.try_acquire():
            holder = await self.who_holds()
            if time.monotonic() >= deadline:
                raise AccountLocked(self.account, holder)
            if not announced:
                log.warning("account lock held by another daemon: waiting", holder=holder, wait_s=wait_s)
                announced = True
            await asyncio.sleep(poll_s)
        log.info("account lock taken", account=self.account, key=self.key)

    async def who_holds(self) -> str:
        """Who holds the lock, as Postgres knows it (application name, pid, client, since when)."""
        conn = await self._connect()
        try:
            cur = await conn.execute(
                """SELECT a.pid, a.application_name, a.client_addr::text AS addr, a.backend_start
                   FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                   WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                     AND l.classid = %s AND l.objid = %s""",
                ((self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF),
            )
            row = await cur.fetchone()
        finally:
            await conn.close()
        if row is None:
            return "a session that has just released it"
        name = row["application_name"] or "an unnamed session"
        return f"{name}, backend pid {row['pid']}, client {row['addr'] or 'local socket'}, since {row['backend_start']:%Y-%m-%d %H:%M:%S%z}"

    async def alive(self) -> bool:
        """Whether the lock's connection still answers (the lock lives exactly as long)."""
        if self._conn is None or self._conn.closed:
            return False
        try:
            await self._conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    async def watch(
        self,
        stop: asyncio.Event,
        *,
        on_lost: Callable[[], Awaitable[None] | None],
        on_regained: Callable[[], Awaitable[None] | None],
        interval_s: float = 2.0,
    ) -> None:
        """Until `stop`: check the lock, report its loss, take it back when the database lets us."""
        lost = False
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
            if stop.is_set():
                return
            if await self.alive():
                continue
            if not lost:
                lost = True
                log.error(
                    "account lock lost (database connection gone): entries halted", account=self.account
                )
                await _maybe_await(on_lost())
            await self._drop()
            try:
                if await self.try_acquire():
                    lost = False
                    log.info("account lock taken back", account=self.account)
                    await _maybe_await(on_regained())
                else:
                    log.error("account lock now held by someone else", holder=await self.who_holds())
            except psycopg.Error as exc:
                log.warning("account lock: database still unreachable", error=str(exc).strip()[:200])

    async def release(self) -> None:
        if self._conn is not None and not self._conn.closed:
            with contextlib.suppress(psycopg.Error):
                await self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        await self._drop()

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
        self._conn = None


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if value is not None:
        await value
