"""The users of the daemon's API (migrations 0001 and 0006), async for the daemon.

A `User` never carries the password hash: it is what the API may show and what the auth service caches.
The hash is read by `password_hash` alone, when a password is checked. `token_version` is carried by every
token the API issues; `set_password` bumps it, which revokes every token issued before.
"""

from __future__ import annotations

import builtins
from typing import Any, Literal

import msgspec

from infra.db.errors import NotFound, storage_errors
from infra.db.repositories._base import AsyncConn, AsyncRepository, ms
from schemas.times import ms_to_datetime, now_ms

UserRole = Literal["viewer", "trader", "admin"]


class User(msgspec.Struct, frozen=True, kw_only=True):
    """One user of the API, without its password hash."""

    id: int
    username: str
    role: UserRole
    is_active: bool
    token_version: int
    created_ms: int
    last_login_ms: int | None = None
    password_changed_ms: int | None = None


_COLUMNS = f"""id, username, role, is_active, token_version, {ms("created_at")}, {ms("last_login_at")},
       {ms("password_changed_at")}"""
_SELECT = f"SELECT {_COLUMNS} FROM users"


def _user(row: dict[str, Any] | None) -> User | None:
    return None if row is None else msgspec.convert(row, User)


class UserRepository(AsyncRepository):
    """Rows of `users`. Every method takes an optional `conn` (see `AsyncRepository`)."""

    async def create(
        self,
        username: str,
        password_hash: str,
        role: UserRole,
        *,
        created_ms: int | None = None,
        conn: AsyncConn | None = None,
    ) -> User:
        """Store a new active user; `DuplicateKey` when the username is taken."""
        at = ms_to_datetime(created_ms if created_ms is not None else now_ms())
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            with storage_errors(duplicate=f"user {username!r} already exists"):
                await cur.execute(
                    f"""INSERT INTO users (username, password_hash, role, created_at)
                        VALUES (%s, %s, %s, %s) RETURNING {_COLUMNS}""",
                    (username, password_hash, role, at),
                )
            return self._one(await cur.fetchone(), username)

    async def get_by_username(self, username: str, *, conn: AsyncConn | None = None) -> User | None:
        return await self._get("username = %s", username, conn)

    async def get_by_id(self, user_id: int, *, conn: AsyncConn | None = None) -> User | None:
        return await self._get("id = %s", user_id, conn)

    async def list(self, *, conn: AsyncConn | None = None) -> builtins.list[User]:
        """Every user, active or not, oldest first."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(_SELECT + " ORDER BY id")
            return [msgspec.convert(r, User) for r in await cur.fetchall()]

    async def count(self, *, conn: AsyncConn | None = None) -> int:
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute("SELECT count(*) AS n FROM users")
            row = await cur.fetchone()
            return int(row["n"])

    async def password_hash(self, username: str, *, conn: AsyncConn | None = None) -> str | None:
        """The stored bcrypt hash of `username` (active or not), or None when there is no such user."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute("SELECT password_hash FROM users WHERE username = %s", (username,))
            row = await cur.fetchone()
            return None if row is None else str(row["password_hash"])

    async def set_password(
        self,
        username: str,
        password_hash: str,
        *,
        changed_ms: int | None = None,
        conn: AsyncConn | None = None,
    ) -> User:
        """Replace the hash and bump `token_version` (every token issued before is revoked)."""
        at = ms_to_datetime(changed_ms if changed_ms is not None else now_ms())
        return await self._update(
            "password_hash = %s, token_version = token_version + 1, password_changed_at = %s",
            (password_hash, at),
            username,
            conn,
        )

    async def set_active(self, username: str, active: bool, *, conn: AsyncConn | None = None) -> User:
        return await self._update("is_active = %s", (active,), username, conn)

    async def set_role(self, username: str, role: UserRole, *, conn: AsyncConn | None = None) -> User:
        return await self._update("role = %s", (role,), username, conn)

    async def touch_login(
        self, user_id: int, at_ms: int | None = None, *, conn: AsyncConn | None = None
    ) -> None:
        """Record a successful login."""
        at = ms_to_datetime(at_ms if at_ms is not None else now_ms())
        async with self._tx(conn) as c:
            await c.execute("UPDATE users SET last_login_at = %s WHERE id = %s", (at, user_id))

    async def _get(self, where: str, key: object, conn: AsyncConn | None) -> User | None:
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(f"{_SELECT} WHERE {where}", (key,))
            return _user(await cur.fetchone())

    async def _update(
        self, assignments: str, params: tuple[object, ...], username: str, conn: AsyncConn | None
    ) -> User:
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"UPDATE users SET {assignments} WHERE username = %s RETURNING {_COLUMNS}",
                (*params, username),
            )
            return self._one(await cur.fetchone(), username)

    @staticmethod
    def _one(row: dict[str, Any] | None, username: str) -> User:
        user = _user(row)
        if user is None:
            raise NotFound(f"no user {username!r}")
        return user
