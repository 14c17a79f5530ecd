"""Authentication of the API: users with bcrypt hashes, JWT access and refresh tokens (HS256), a throttle
on failed logins, and `require_role`, the dependency behind `deps.Viewer`, `deps.Trader` and `deps.Admin`.

* The signing key is `SECRET_KEY`, or one generated at the first start into `ApiConfig.secret_key_file`
  (mode 0600) and reused after. The first start also creates the admin from `APP_PASSWORD`; without it and
  without users, logins answer 503 saying so (`AuthService.login_unavailable_reason`, for the status).
* Every token carries the user's `token_version`; a password change bumps it, so every token issued before
  (access and refresh) is refused from then on. A request's token is checked against the user as read at
  most `USER_CACHE_MS` ago; a change made through this service is seen at once.
* Failed logins: at most `login_attempts_per_minute` per client and four times that per username (many
  clients guessing one password) in any sliding minute; beyond it, 429 with `Retry-After`.
* Secrets (passwords, the key, tokens) never reach a log, an exception or a response, except the tokens
  that login, refresh and a password change return.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import bcrypt
import jwt
import structlog
from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool

from infra.configs import ApiConfig
from infra.db.errors import DuplicateKey, storage_errors
from infra.db.repositories._base import AsyncConn
from infra.db.repositories.audit import AuditRepository
from infra.db.repositories.users import User, UserRepository, UserRole
from schemas.enums import AuditAction
from schemas.times import now_ms
from schemas.trading import AuditEvent
from trading_daemon.api.principal import Principal, Role

log = structlog.get_logger("trading_daemon.api.auth")

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_BYTES = 72  # bcrypt refuses longer input
MIN_SECRET_KEY_BYTES = 32  # HS256's own output size (RFC 7518 §3.2)
USER_CACHE_MS = 2_000
THROTTLE_WINDOW_MS = 60_000
USERNAME_THROTTLE_FACTOR = 4
_ALGORITHM = "HS256"
_INVALID_CREDENTIALS = "invalid username or password"
_BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_KINDS = {"access": "an access token", "refresh": "a refresh token"}
_ROLE_VALUES: dict[Role, UserRole] = {Role.VIEWER: "viewer", Role.TRADER: "trader", Role.ADMIN: "admin"}
_USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@-")


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login, a refresh or a password change returns (the tokens stay out of the repr)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int  # seconds, of the access token
    refresh_expires_in: int
    expires_at_ms: int  # of the access token
    username: str
    role: Role
    token_type: str = "bearer"


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """A verified access token: who calls, and until when the token is valid."""

    principal: Principal
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class _Claims:
    user_id: int
    version: int
    expires_at_ms: int


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers=_BEARER_CHALLENGE)


def _storable(text: str) -> bool:
    """Whether Postgres can hold `text` (no NUL, valid UTF-8)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _escaped(text: str) -> str:
    """`text` with what Postgres cannot hold written as escapes, for the log and the audit trail."""
    return text.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")


def invalid_field(name: str, message: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own (a list of {loc, msg, type}), so that it matches the schema."""
    return RequestValidationError([{"loc": ("body", name), "msg": message, "type": "value_error"}])


def check_new_password(password: str, name: str) -> None:
    """422 naming `name` (the request field) when `password` cannot become a password; never echoes it."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise invalid_field(
            name, f"{name} must be {MIN_PASSWORD_CHARS} characters or more (it has {len(password)})"
        )
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise invalid_field(
            name, f"{name} must be {MAX_PASSWORD_BYTES} bytes or fewer in UTF-8 (bcrypt's limit)"
        )


def check_username(username: str) -> None:
    if not 1 <= len(username) <= 64 or not set(username) <= _USERNAME_CHARS:
        raise invalid_field(
            "username", f"username {username!r} must be 1 to 64 letters, digits or any of _ . @ - (no spaces)"
        )


class _FailureWindow:
    """Failed attempts per key over the last `THROTTLE_WINDOW_MS` (a sliding window, in memory)."""

    _SWEEP_ABOVE = 4096  # keys; stale ones are dropped past this, so random names cannot grow it for ever

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._hits: dict[str, deque[int]] = {}

    def retry_after_s(self, key: str, now: int) -> int:
        """0 when `key` may try again now, else the seconds until its oldest failure leaves the window."""
        hits = self._hits.get(key)
        if hits is None:
            return 0
        while hits and hits[0] <= now - THROTTLE_WINDOW_MS:
            hits.popleft()
        if len(hits) < self.limit:
            return 0
        return max(1, math.ceil((hits[0] + THROTTLE_WINDOW_MS - now) / 1000))

    def add(self, key: str, now: int) -> None:
        if len(self._hits) > self._SWEEP_ABOVE:
            self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - THROTTLE_WINDOW_MS}
        self._hits.setdefault(key, deque()).append(now)

    def discard(self, key: str, at: int) -> None:
        hits = self._hits.get(key)
        if hits is not None and at in hits:
            hits.remove(at)


class AuthService:
    """Users, tokens and the login throttle of the API (one per daemon, on `app.state.auth`)."""

    def __init__(
        self,
        config: ApiConfig,
        pool: AsyncConnectionPool,
        *,
        clock_ms: Callable[[], int] | None = None,
        bcrypt_rounds: int = 12,
    ) -> None:
        self._config = config
        self._pool = pool
        self._clock = clock_ms or now_ms
        self._rounds = bcrypt_rounds
        self._users = UserRepository(pool)
        self._audit = AuditRepository(pool)
        self._key: bytes | None = None
        self._dummy_hash = b""
        self._unavailable: str | None = None
        self._cache: dict[int, tuple[int, User | None]] = {}
        self._by_client = _FailureWindow(config.login_attempts_per_minute)
        self._by_username = _FailureWindow(config.login_attempts_per_minute * USERNAME_THROTTLE_FACTOR)

    @property
    def login_unavailable_reason(self) -> str | None:
        """Why nobody can log in (no user exists and APP_PASSWORD is unset), or None."""
        return self._unavailable

    async def open(self) -> None:
        """Load or generate the signing key; create the first admin from APP_PASSWORD when there is no user."""
        self._key = await asyncio.to_thread(self._load_key)
        # Unknown usernames are checked against this, so that they take as long as a wrong password.
        self._dummy_hash = await asyncio.to_thread(
            bcrypt.hashpw, secrets.token_urlsafe(24).encode(), bcrypt.gensalt(self._rounds)
        )
        if await self._users.count() > 0:
            return
        if self._config.admin_password is None:
            self._unavailable = (
                f"no API user exists: set APP_PASSWORD ({MIN_PASSWORD_CHARS} characters or more) and restart the "
                f"daemon to create the admin {self._config.admin_username!r}"
            )
            log.warning("api has no user", reason=self._unavailable)
            return
        password = self._config.admin_password.get_secret_value()
        if len(password) < MIN_PASSWORD_CHARS or len(password.encode()) > MAX_PASSWORD_BYTES:
            raise ValueError(
                f"APP_PASSWORD must be {MIN_PASSWORD_CHARS} characters or more and {MAX_PASSWORD_BYTES} bytes or "
                f"fewer (it has {len(password)} characters)"
            )
        username = self._config.admin_username
        try:
            user = await self._store_new_user(
                username, password, Role.ADMIN, actor="daemon", reason="first start"
            )
        except DuplicateKey:
            return  # another daemon on the same database created it first
        log.info("api admin created", username=user.username)

    # ---- logins and tokens ----------------------------------------------------------------------------

    async def login(self, username: str, password: str, client: str) -> TokenPair:
        """Tokens for `username` when the password is right; 401 (the same for an unknown user and a wrong
        password), 429 past the throttle, 503 when no user exists."""
        if self._unavailable is not None:
            if await self._users.count() == 0:
                raise HTTPException(503, self._unavailable)
            self._unavailable = None  # a user was created since (by another process)
        now = self._clock()
        username = username if _storable(username) else _escaped(username)  # as logged and audited
        name_key = username.casefold()
        retry = max(
            self._by_client.retry_after_s(client, now), self._by_username.retry_after_s(name_key, now)
        )
        if retry:
            log.warning("api login throttled", username=username, client=client, retry_after_s=retry)
            raise HTTPException(
                429, f"too many failed logins: try again in {retry} s", headers={"Retry-After": str(retry)}
            )
        # Counted as failures until proven otherwise, so parallel guesses cannot all pass the check above.
        self._by_client.add(client, now)
        self._by_username.add(name_key, now)
        try:
            user, failure = await self._check_credentials(username, password)
        except BaseException:
            self._by_client.discard(client, now)
            self._by_username.discard(name_key, now)
            raise
        if user is None:
            log.warning("api login failed", username=username, client=client, reason=failure)
            await self._audit.append(self._login_event(username, client, failure))
            raise _unauthorized(_INVALID_CREDENTIALS)
        self._by_client.discard(client, now)
        self._by_username.discard(name_key, now)
        async with self._transaction() as conn:
            await self._users.touch_login(user.id, now, conn=conn)
            await self._audit.append(self._login_event(username, client, None), conn=conn)
        self._remember(user)
        log.info("api login", username=username, client=client, role=user.role)
        return self._issue(user)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """A new pair for a valid refresh token whose user is active and has not changed password since."""
        claims = self._decode(refresh_token, "refresh")
        user = await self._users.get_by_id(claims.user_id)  # not cached: refreshes are rare
        self._remember_id(claims.user_id, user)
        return self._issue(self._current(user, claims))

    async def verify_access(self, token: str) -> Principal:
        """The caller of an access token; 401 when it is bad, expired, or revoked."""
        return (await self.verify_grant(token)).principal

    async def verify_grant(self, token: str) -> AccessGrant:
        """`verify_access`, with the token's expiry."""
        claims = self._decode(token, "access")
        # The role is the stored one, not the token's claim: a role change applies within USER_CACHE_MS.
        user = self._current(await self._cached_user(claims.user_id), claims)
        return AccessGrant(Principal(user.id, user.username, Role(user.role)), claims.expires_at_ms)

    async def change_password(self, principal: Principal, current: str, new: str) -> TokenPair:
        """Replace the caller's password; every token issued before stops working. Returns a fresh pair."""
        check_new_password(new, "new_password")
        if new == current:
            raise invalid_field("new_password", "new_password must differ from current_password")
        now = self._clock()
        name_key = principal.username.casefold()
        # A stolen access token must not become a way to guess the password behind it.
        retry = self._by_username.retry_after_s(name_key, now)
        if retry:
            raise HTTPException(
                429, f"too many wrong passwords: try again in {retry} s", headers={"Retry-After": str(retry)}
            )
        stored = await self._users.password_hash(principal.username)
        if stored is None or not await self._password_matches(current, stored.encode()):
            self._by_username.add(name_key, now)
            await self._audit.append(
                self._user_event(
                    principal.username,
                    f"user:{principal.username}",
                    success=False,
                    new={"password_changed": False},
                    error="current_password is wrong",
                )
            )
            raise HTTPException(403, "current_password is wrong")
        new_hash = await self._hash(new)
        async with self._transaction() as conn:
            user = await self._users.set_password(principal.username, new_hash, changed_ms=now, conn=conn)
            await self._audit.append(
                self._user_event(
                    user.username,
                    f"user:{principal.username}",
                    new={"password_changed": True, "token_version": user.token_version},
                ),
                conn=conn,
            )
        self._remember(user)
        log.info("api password changed", username=user.username)
        return self._issue(user)

    # ---- users ----------------------------------------------------------------------------------------

    async def users(self) -> list[User]:
        """Every user (without hashes), oldest first."""
        return await self._users.list()

    async def create_user(self, by: Principal, username: str, password: str, role: Role) -> User:
        """A new active user (admins only); 409 when the username is taken."""
        self._require_admin(by)
        check_username(username)
        check_new_password(password, "password")
        try:
            user = await self._store_new_user(username, password, role, actor=f"user:{by.username}")
        except DuplicateKey:
            raise HTTPException(409, f"user {username!r} already exists") from None
        log.info("api user created", username=username, role=str(role), by=by.username)
        return user

    async def deactivate_user(self, by: Principal, username: str) -> User:
        """Deactivate `username` (admins only; not oneself): its tokens stop working at once."""
        self._require_admin(by)
        if username == by.username:
            raise HTTPException(
                409, f"{by.username!r} cannot deactivate themselves: another admin must do it"
            )
        user = await self._users.get_by_username(username)
        if user is None:
            raise HTTPException(404, f"no user {username!r}")
        if not user.is_active:
            return user
        async with self._transaction() as conn:
            user = await self._users.set_active(username, False, conn=conn)
            await self._audit.append(
                self._user_event(
                    username, f"user:{by.username}", old={"is_active": True}, new={"is_active": False}
                ),
                conn=conn,
            )
        self._remember(user)
        log.info("api user deactivated", username=username, by=by.username)
        return user

    # ---- internals ------------------------------------------------------------------------------------

    def _load_key(self) -> bytes:
        configured = self._config.secret_key
        if configured is not None:
            key = configured.get_secret_value().encode()
            if len(key) < MIN_SECRET_KEY_BYTES:
                raise ValueError(
                    f"SECRET_KEY is {len(key)} bytes: it must be {MIN_SECRET_KEY_BYTES} bytes or more "
                    "(or unset it, and a key is generated and kept)"
                )
            return key
        path = self._config.secret_key_file
        if not path.exists():
            try:
                return _generate_key(path)
            except FileExistsError:
                pass  # another process generated it just now: use theirs
        key = path.read_bytes().strip()
        if len(key) < MIN_SECRET_KEY_BYTES:
            raise ValueError(
                f"the SECRET_KEY file {path} holds {len(key)} bytes: {MIN_SECRET_KEY_BYTES} or more are needed; "
                "delete it to have a new key generated (every token issued before is then refused)"
            )
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
            log.warning("api secret key file was readable by others: now 0600", path=str(path))
        return key

    async def _check_credentials(self, username: str, password: str) -> tuple[User | None, str]:
        # A name no user can have (NUL, lone surrogates: Postgres cannot even hold them) is an unknown user.
        stored = await self._users.password_hash(username) if _storable(username) else None
        if stored is None:
            await self._password_matches(password, self._dummy_hash)
            return None, "unknown user"
        if not await self._password_matches(password, stored.encode()):
            return None, "wrong password"
        user = await self._users.get_by_username(username)
        if user is None or not user.is_active:
            return None, "user is deactivated"
        return user, ""

    async def _password_matches(self, password: str, hashed: bytes) -> bool:
        raw = password.encode("utf-8", "surrogatepass")
        # No stored password is longer than bcrypt's limit, so a longer one is wrong; it is still hashed
        # (cut to the limit) so that it takes as long as any other.
        fits = len(raw) <= MAX_PASSWORD_BYTES
        matches = await asyncio.to_thread(bcrypt.checkpw, raw[:MAX_PASSWORD_BYTES], hashed)
        return fits and matches

    async def _hash(self, password: str) -> str:
        hashed = await asyncio.to_thread(bcrypt.hashpw, password.encode(), bcrypt.gensalt(self._rounds))
        return hashed.decode()

    async def _store_new_user(
        self, username: str, password: str, role: Role, *, actor: str, reason: str | None = None
    ) -> User:
        password_hash = await self._hash(password)
        async with self._transaction() as conn:
            user = await self._users.create(
                username, password_hash, _ROLE_VALUES[role], created_ms=self._clock(), conn=conn
            )
            await self._audit.append(
                self._user_event(
                    username,
                    actor,
                    reason=reason,
                    new={"username": username, "role": user.role, "is_active": True},
                ),
                conn=conn,
            )
        return user

    def _issue(self, user: User) -> TokenPair:
        now_s = self._clock() // 1000
        access_exp = now_s + self._config.access_token_s
        refresh_exp = now_s + self._config.refresh_token_s
        common = {"sub": str(user.id), "ver": user.token_version, "iat": now_s}
        access = self._encode(
            {**common, "typ": "access", "name": user.username, "role": user.role, "exp": access_exp}
        )
        refresh = self._encode({**common, "typ": "refresh", "exp": refresh_exp})
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=self._config.access_token_s,
            refresh_expires_in=self._config.refresh_token_s,
            expires_at_ms=access_exp * 1000,
            username=user.username,
            role=Role(user.role),
        )

    def _encode(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            {**claims, "jti": secrets.token_urlsafe(12)}, self._signing_key(), algorithm=_ALGORITHM
        )

    def _decode(self, token: str, typ: str) -> _Claims:
        # Expiry is checked here against the injected clock, not by pyjwt against the wall clock.
        try:
            claims = jwt.decode(
                token,
                self._signing_key(),
                algorithms=[_ALGORITHM],
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["sub", "typ", "ver", "iat", "exp", "jti"],
                },
            )
            parsed = _Claims(int(claims["sub"]), int(claims["ver"]), int(claims["exp"]) * 1000)
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise _unauthorized(f"invalid {typ} token: log in again") from None
        if claims["typ"] != typ:
            sent = _KINDS.get(claims["typ"], "another kind of token")
            raise _unauthorized(f"{sent} was sent where {_KINDS[typ]} is needed")
        if self._clock() >= parsed.expires_at_ms:
            raise _unauthorized(
                f"{typ} token expired: " + ("refresh it" if typ == "access" else "log in again")
            )
        return parsed

    def _signing_key(self) -> bytes:
        if self._key is None:
            raise RuntimeError("AuthService.open() must be awaited before tokens are issued or checked")
        return self._key

    def _current(self, user: User | None, claims: _Claims) -> User:
        """`user` if the token still speaks for it, else 401 saying why."""
        if user is None:
            raise _unauthorized("the user of this token no longer exists")
        if not user.is_active:
            raise _unauthorized(f"user {user.username!r} is deactivated")
        if user.token_version != claims.version:
            raise _unauthorized(
                f"token revoked: the password of {user.username!r} changed since; log in again"
            )
        return user

    async def _cached_user(self, user_id: int) -> User | None:
        now = self._clock()
        cached = self._cache.get(user_id)
        if cached is not None and now - cached[0] < USER_CACHE_MS:
            return cached[1]
        user = await self._users.get_by_id(user_id)
        self._remember_id(user_id, user)
        return user

    def _remember(self, user: User) -> None:
        self._remember_id(user.id, user)

    def _remember_id(self, user_id: int, user: User | None) -> None:
        self._cache[user_id] = (self._clock(), user)

    @staticmethod
    def _require_admin(by: Principal) -> None:
        if not by.role.allows(Role.ADMIN):
            raise HTTPException(403, f"managing users needs the admin role; {by.username!r} is {by.role}")

    def _transaction(self) -> contextlib.AbstractAsyncContextManager[AsyncConn]:
        return _transaction(self._pool)

    def _login_event(self, username: str, client: str, failure: str | None) -> AuditEvent:
        return AuditEvent(
            action=AuditAction.LOGIN,
            entity_type="user",
            entity_id=username,
            actor=f"user:{username}",
            success=failure is None,
            error_message=failure,
            context={"client": client, "via": "api"},
            ts=self._clock(),
        )

    def _user_event(
        self,
        username: str,
        actor: str,
        *,
        old: dict[str, Any] | None = None,
        new: dict[str, Any] | None = None,
        reason: str | None = None,
        success: bool = True,
        error: str | None = None,
    ) -> AuditEvent:
        return AuditEvent(
            action=AuditAction.USER_CHANGE,
            entity_type="user",
            entity_id=username,
            actor=actor,
            old_value=old,
            new_value=new,
            reason=reason,
            success=success,
            error_message=error,
            context={"via": "api"},
            ts=self._clock(),
        )


@contextlib.asynccontextmanager
async def _transaction(pool: AsyncConnectionPool) -> AsyncIterator[AsyncConn]:
    """A pooled connection in one transaction (a user change and its audit row commit together), its driver
    errors translated as the repositories' are."""
    with storage_errors():
        async with pool.connection() as conn, conn.transaction():
            yield conn


def _generate_key(path: Path) -> bytes:
    """A new key in a new file readable by its owner only (O_EXCL: never overwrites a key in use)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_urlsafe(64).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # whatever the umask
        f.write(key + b"\n")
    log.info("api secret key generated", path=str(path))
    return key


# ---- the FastAPI dependency ---------------------------------------------------------------------------

bearer_scheme = HTTPBearer(auto_error=False, description="An access token from POST /api/auth/login")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def require_role(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency returning the caller when its access token is valid and its role is `role` or higher:
    401 (with `WWW-Authenticate: Bearer`) without a valid token, 403 naming `role` when the role is lower."""

    async def caller(request: Request, credentials: Credentials) -> Principal:
        if credentials is None:
            raise _unauthorized(
                "not authenticated: send 'Authorization: Bearer <access token>' (POST /api/auth/login)"
            )
        auth: AuthService = request.app.state.auth
        principal = await auth.verify_access(credentials.credentials)
        if not principal.role.allows(role):
            raise HTTPException(
                403, f"this needs the {role} role; {principal.username!r} is {principal.role}"
            )
        return principal

    caller.__name__ = f"require_{role}"
    return caller
