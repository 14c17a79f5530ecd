"""The API's authentication through its routes: a bare FastAPI app with the auth router and a real
`AuthService` over a migrated database, driven by httpx, with the clock injected to age tokens and the
throttle's window."""

from __future__ import annotations

import contextlib
import json
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr
from structlog.testing import capture_logs

from infra.configs import ApiConfig
from infra.db.repositories.audit import AuditRepository
from infra.db.repositories.users import UserRepository
from schemas.enums import AuditAction
from trading_daemon.api.auth import AuthService
from trading_daemon.api.routes.auth import router

ADMIN_PASSWORD = "first-admin-Pa55word"
SECRET_KEY = "test-signing-key-0123456789-abcdefghijklmnop"
VIEWER_PASSWORD = "viewer-Pa55word-long"
ATTEMPTS = 3


class Clock:
    def __init__(self) -> None:
        self.ms = 1_800_000_000_000

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


def make_config(tmp_path: Path, **changes: Any) -> ApiConfig:
    config = ApiConfig(
        enabled=True,
        host="127.0.0.1",
        port=0,
        secret_key=SecretStr(SECRET_KEY),
        secret_key_file=tmp_path / "var" / "api" / "secret_key",
        admin_username="admin",
        admin_password=SecretStr(ADMIN_PASSWORD),
        access_token_s=900,
        refresh_token_s=86_400,
        login_attempts_per_minute=ATTEMPTS,
        cors_origins=(),
        ws_client_queue=64,
        dashboard_dir=tmp_path,
        dagster_ui_url="http://127.0.0.1:3000",
    )
    return replace(config, **changes)


@dataclass
class Api:
    auth: AuthService
    app: FastAPI
    clock: Clock
    bodies: list[str] = field(default_factory=list)  # every response body, for the secrecy test

    @contextlib.asynccontextmanager
    async def client(self, ip: str = "10.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
        async def keep(response: httpx.Response) -> None:
            self.bodies.append((await response.aread()).decode())

        transport = httpx.ASGITransport(self.app, client=(ip, 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api.test", event_hooks={"response": [keep]}
        ) as client:
            yield client


async def start(pool: AsyncConnectionPool, config: ApiConfig, clock: Clock | None = None) -> Api:
    clock = clock or Clock()
    auth = AuthService(config, pool, clock_ms=clock, bcrypt_rounds=4)
    await auth.open()
    app = FastAPI()
    app.state.auth = auth
    app.include_router(router)
    return Api(auth, app, clock)


@pytest.fixture
async def api(pool: AsyncConnectionPool, tmp_path: Path) -> Api:
    return await start(pool, make_config(tmp_path))


async def login(
    client: httpx.AsyncClient, username: str = "admin", password: str = ADMIN_PASSWORD
) -> dict[str, Any]:
    response = await client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def add_viewer(client: httpx.AsyncClient, admin_token: str, username: str = "vera") -> None:
    response = await client.post(
        "/api/auth/users",
        json={"username": username, "password": VIEWER_PASSWORD, "role": "viewer"},
        headers=bearer(admin_token),
    )
    assert response.status_code == 201, response.text


# ---- first start, keys ----------------------------------------------------------------------------------


async def test_first_start_creates_the_admin_from_app_password_once(
    pool: AsyncConnectionPool, tmp_path: Path
) -> None:
    api = await start(pool, make_config(tmp_path))
    assert api.auth.login_unavailable_reason is None
    [admin] = await api.auth.users()
    assert (admin.username, admin.role, admin.is_active, admin.token_version) == ("admin", "admin", True, 0)
    [event] = await AuditRepository(pool).find(action=AuditAction.USER_CHANGE)
    assert (event.actor, event.entity_id, event.success) == ("daemon", "admin", True)
    assert event.new_value == {"username": "admin", "role": "admin", "is_active": True}

    # The next start finds the user and creates nobody, whatever APP_PASSWORD now says.
    again = await start(pool, make_config(tmp_path, admin_password=SecretStr("another-password-1")))
    assert [u.username for u in await again.auth.users()] == ["admin"]
    async with again.client() as client:
        await login(client)


async def test_without_users_and_app_password_logins_are_refused_saying_why(
    pool: AsyncConnectionPool, tmp_path: Path
) -> None:
    api = await start(pool, make_config(tmp_path, admin_password=None))
    reason = api.auth.login_unavailable_reason
    assert reason is not None and "APP_PASSWORD" in reason and "restart" in reason
    async with api.client() as client:
        response = await client.post(
            "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
    assert response.status_code == 503
    assert response.json()["detail"] == reason


async def test_a_short_app_password_or_secret_key_is_a_clear_error(
    pool: AsyncConnectionPool, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="APP_PASSWORD must be 12 characters or more") as short_password:
        await start(pool, make_config(tmp_path, admin_password=SecretStr("short-pw")))
    assert "short-pw" not in str(short_password.value)
    assert await UserRepository(pool).count() == 0

    with pytest.raises(ValueError, match="SECRET_KEY is 10 bytes: it must be 32 bytes or more") as short_key:
        await start(pool, make_config(tmp_path, secret_key=SecretStr("0123456789")))
    assert "0123456789" not in str(short_key.value)


async def test_a_generated_key_is_kept_0600_and_reused(pool: AsyncConnectionPool, tmp_path: Path) -> None:
    config = make_config(tmp_path, secret_key=None)
    first = await start(pool, config)
    key_file = config.secret_key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes()
    assert len(key.strip()) >= 64
    async with first.client() as client:
        token = (await login(client))["access_token"]

    # A restart signs with the same key: tokens issued before it still work.
    second = await start(pool, config, first.clock)
    assert key_file.read_bytes() == key
    async with second.client() as client:
        assert (await client.get("/api/auth/verify", headers=bearer(token))).status_code == 200


# ---- logins and tokens ----------------------------------------------------------------------------------


async def test_login_answers_tokens_and_the_same_401_for_a_wrong_password_or_an_unknown_user(
    api: Api,
) -> None:
    async with api.client() as client:
        pair = await login(client)
        assert pair["token_type"] == "bearer"
        assert (pair["username"], pair["role"], pair["expires_in"], pair["refresh_expires_in"]) == (
            "admin",
            "admin",
            900,
            86_400,
        )
        verify = await client.get("/api/auth/verify", headers=bearer(pair["access_token"]))
        assert verify.status_code == 200
        [admin] = await api.auth.users()
        assert verify.json() == {
            "user_id": admin.id,
            "username": "admin",
            "role": "admin",
            "expires_at_ms": api.clock.ms + 900_000,
        }
        assert admin.last_login_ms == api.clock.ms

        wrong = await client.post(
            "/api/auth/login", json={"username": "admin", "password": "not-the-password"}
        )
        unknown = await client.post(
            "/api/auth/login", json={"username": "nobody", "password": ADMIN_PASSWORD}
        )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "invalid username or password"}
    assert wrong.headers["www-authenticate"] == "Bearer"


async def test_401_without_a_token_with_garbage_or_once_expired(api: Api) -> None:
    async with api.client() as client:
        token = (await login(client))["access_token"]
        missing = await client.get("/api/auth/verify")
        garbage = await client.get("/api/auth/verify", headers=bearer("not.a.token"))
        forged = await client.get("/api/auth/verify", headers=bearer(token[:-4] + "AAAA"))
        api.clock.advance(899)
        assert (await client.get("/api/auth/verify", headers=bearer(token))).status_code == 200
        api.clock.advance(1)
        expired = await client.get("/api/auth/verify", headers=bearer(token))
    for response in (missing, garbage, forged, expired):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["detail"]
    assert garbage.json()["detail"] == forged.json()["detail"] == "invalid access token: log in again"
    assert expired.json()["detail"] == "access token expired: refresh it"


async def test_a_viewer_is_refused_admin_routes_with_403_naming_the_role(api: Api) -> None:
    async with api.client() as client:
        admin = (await login(client))["access_token"]
        await add_viewer(client, admin)
        viewer = await login(client, "vera", VIEWER_PASSWORD)
        assert viewer["role"] == "viewer"
        assert (
            await client.get("/api/auth/verify", headers=bearer(viewer["access_token"]))
        ).status_code == 200
        listing = await client.get("/api/auth/users", headers=bearer(viewer["access_token"]))
        creating = await client.post(
            "/api/auth/users",
            json={"username": "mallory", "password": VIEWER_PASSWORD, "role": "admin"},
            headers=bearer(viewer["access_token"]),
        )
    for response in (listing, creating):
        assert response.status_code == 403
        assert response.json()["detail"] == "this needs the admin role; 'vera' is viewer"
    assert [u.username for u in await api.auth.users()] == ["admin", "vera"]


async def test_bad_input_is_422_and_a_refused_password_is_not_echoed(api: Api) -> None:
    async with api.client() as client:
        admin = bearer((await login(client))["access_token"])
        cases = [
            await client.post("/api/auth/login", json={"username": "admin"}),
            await client.post("/api/auth/login", json={"username": "", "password": "x"}),
            await client.post("/api/auth/login", json={"username": "a" * 65, "password": "x"}),
            await client.post(
                "/api/auth/users",
                json={"username": "eve", "password": VIEWER_PASSWORD, "role": "root"},
                headers=admin,
            ),
            await client.post(
                "/api/auth/users",
                json={"username": "e ve", "password": VIEWER_PASSWORD, "role": "viewer"},
                headers=admin,
            ),
            await client.post("/api/auth/refresh", json={}),
        ]
        short = await client.post(
            "/api/auth/users",
            json={"username": "eve", "password": "tiny-secret", "role": "viewer"},
            headers=admin,
        )
    assert [r.status_code for r in cases] == [422] * len(cases)
    assert short.status_code == 422
    assert short.json()["detail"][0]["msg"] == "password must be 12 characters or more (it has 11)"
    assert short.json()["detail"][0]["loc"] == ["body", "password"]
    assert "tiny-secret" not in short.text


async def test_refresh_gives_a_new_pair_and_the_two_kinds_of_token_are_not_interchangeable(api: Api) -> None:
    async with api.client() as client:
        pair = await login(client)
        api.clock.advance(1000)  # the access token has expired, the refresh token has not
        assert (await client.get("/api/auth/verify", headers=bearer(pair["access_token"]))).status_code == 401
        refreshed = await client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert refreshed.status_code == 200
        new = refreshed.json()
        assert (await client.get("/api/auth/verify", headers=bearer(new["access_token"]))).status_code == 200

        access_as_refresh = await client.post(
            "/api/auth/refresh", json={"refresh_token": new["access_token"]}
        )
        refresh_as_access = await client.get("/api/auth/verify", headers=bearer(new["refresh_token"]))
        api.clock.advance(86_400)
        stale = await client.post("/api/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert access_as_refresh.status_code == refresh_as_access.status_code == 401
    assert access_as_refresh.json()["detail"] == "an access token was sent where a refresh token is needed"
    assert refresh_as_access.json()["detail"] == "a refresh token was sent where an access token is needed"
    assert stale.status_code == 401 and stale.json()["detail"] == "refresh token expired: log in again"


async def test_change_password_revokes_every_older_token(api: Api) -> None:
    async with api.client() as client:
        old = await login(client)
        other_session = await login(client)
        headers = bearer(old["access_token"])
        wrong = await client.post(
            "/api/auth/change-password",
            json={"current_password": "not-the-password", "new_password": "a-brand-new-Pa55word"},
            headers=headers,
        )
        same = await client.post(
            "/api/auth/change-password",
            json={"current_password": ADMIN_PASSWORD, "new_password": ADMIN_PASSWORD},
            headers=headers,
        )
        changed = await client.post(
            "/api/auth/change-password",
            json={"current_password": ADMIN_PASSWORD, "new_password": "a-brand-new-Pa55word"},
            headers=headers,
        )
        assert changed.status_code == 200, changed.text
        new = changed.json()
        for token in (old["access_token"], other_session["access_token"]):
            revoked = await client.get("/api/auth/verify", headers=bearer(token))
            assert revoked.status_code == 401
            assert (
                revoked.json()["detail"]
                == "token revoked: the password of 'admin' changed since; log in again"
            )
        for token in (old["refresh_token"], other_session["refresh_token"]):
            assert (await client.post("/api/auth/refresh", json={"refresh_token": token})).status_code == 401
        assert (await client.get("/api/auth/verify", headers=bearer(new["access_token"]))).status_code == 200
        assert (
            await client.post("/api/auth/refresh", json={"refresh_token": new["refresh_token"]})
        ).status_code == 200
        old_password = await client.post(
            "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        await login(client, "admin", "a-brand-new-Pa55word")
    assert wrong.status_code == 403 and wrong.json()["detail"] == "current_password is wrong"
    assert same.status_code == 422
    assert old_password.status_code == 401
    [admin] = await api.auth.users()
    assert (admin.token_version, admin.password_changed_ms) == (1, api.clock.ms)


async def test_user_management_deactivation_takes_effect_at_once(api: Api) -> None:
    async with api.client() as client:
        admin = bearer((await login(client))["access_token"])
        await add_viewer(client, admin["Authorization"].split()[1])
        viewer = await login(client, "vera", VIEWER_PASSWORD)
        duplicate = await client.post(
            "/api/auth/users",
            json={"username": "vera", "password": VIEWER_PASSWORD, "role": "trader"},
            headers=admin,
        )
        self_deactivation = await client.delete("/api/auth/users/admin", headers=admin)
        unknown = await client.delete("/api/auth/users/nobody", headers=admin)
        deactivated = await client.delete("/api/auth/users/vera", headers=admin)
        listing = (await client.get("/api/auth/users", headers=admin)).json()
        refused = await client.get("/api/auth/verify", headers=bearer(viewer["access_token"]))
        relogin = await client.post("/api/auth/login", json={"username": "vera", "password": VIEWER_PASSWORD})
    assert duplicate.status_code == 409 and duplicate.json()["detail"] == "user 'vera' already exists"
    assert (
        self_deactivation.status_code == 409
        and "cannot deactivate themselves" in self_deactivation.json()["detail"]
    )
    assert unknown.status_code == 404
    assert deactivated.status_code == 200 and deactivated.json()["is_active"] is False
    assert [(u["username"], u["role"], u["is_active"]) for u in listing] == [
        ("admin", "admin", True),
        ("vera", "viewer", False),
    ]
    assert set(listing[0]) == {  # no hash
        "id",
        "username",
        "role",
        "is_active",
        "created_ms",
        "last_login_ms",
        "password_changed_ms",
    }
    assert refused.status_code == 401 and refused.json()["detail"] == "user 'vera' is deactivated"
    assert relogin.status_code == 401 and relogin.json()["detail"] == "invalid username or password"


async def test_a_change_made_elsewhere_is_seen_within_two_seconds(
    api: Api, pool: AsyncConnectionPool
) -> None:
    async with api.client() as client:
        token = (await login(client))["access_token"]
        assert (await client.get("/api/auth/verify", headers=bearer(token))).status_code == 200
        await UserRepository(pool).set_active("admin", False)  # as another process would
        api.clock.advance(1.5)
        cached = await client.get("/api/auth/verify", headers=bearer(token))
        api.clock.advance(0.6)
        fresh = await client.get("/api/auth/verify", headers=bearer(token))
    assert cached.status_code == 200
    assert fresh.status_code == 401


# ---- throttle, audit, secrecy ---------------------------------------------------------------------------


async def test_failed_logins_are_throttled_per_client_then_allowed_once_the_minute_passes(api: Api) -> None:
    wrong = {"username": "admin", "password": "not-the-password"}
    async with api.client("10.0.0.7") as client:
        for _ in range(ATTEMPTS):
            assert (await client.post("/api/auth/login", json=wrong)).status_code == 401
            api.clock.advance(10)
        throttled = await client.post(
            "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "30"  # the first failure leaves the window 30 s from now
        async with api.client("10.0.0.8") as elsewhere:  # another client is not held back
            await login(elsewhere)
        api.clock.advance(30)
        await login(client)  # one failure has left the window: a slot is free again


async def test_guessing_one_username_from_many_clients_is_throttled_too(api: Api) -> None:
    wrong = {"username": "admin", "password": "not-the-password"}
    for i in range(ATTEMPTS * 4):
        async with api.client(f"10.1.0.{i}") as client:
            assert (await client.post("/api/auth/login", json=wrong)).status_code == 401
    async with api.client("10.2.0.1") as client:
        throttled = await client.post(
            "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) == 60
        api.clock.advance(60)
        await login(client)


async def test_logins_and_user_changes_are_audited_with_the_user_as_actor(
    api: Api, pool: AsyncConnectionPool
) -> None:
    async with api.client("10.3.0.1") as client:
        admin = (await login(client))["access_token"]
        await client.post("/api/auth/login", json={"username": "admin", "password": "not-the-password"})
        await client.post("/api/auth/login", json={"username": "ghost", "password": "not-the-password"})
        await add_viewer(client, admin)
        await client.delete("/api/auth/users/vera", headers=bearer(admin))
    audit = AuditRepository(pool)
    logins = list(reversed(await audit.find(action=AuditAction.LOGIN)))
    assert [(e.actor, e.entity_id, e.success, e.error_message) for e in logins] == [
        ("user:admin", "admin", True, None),
        ("user:admin", "admin", False, "wrong password"),
        ("user:ghost", "ghost", False, "unknown user"),
    ]
    assert all(e.context == {"client": "10.3.0.1", "via": "api"} for e in logins)
    changes = list(reversed(await audit.find(action=AuditAction.USER_CHANGE)))
    assert [(e.actor, e.entity_id, e.old_value, e.new_value) for e in changes] == [
        ("daemon", "admin", None, {"username": "admin", "role": "admin", "is_active": True}),
        ("user:admin", "vera", None, {"username": "vera", "role": "viewer", "is_active": True}),
        ("user:admin", "vera", {"is_active": True}, {"is_active": False}),
    ]
    rows = json.dumps([str(e) for e in logins + changes])
    assert ADMIN_PASSWORD not in rows and "not-the-password" not in rows and VIEWER_PASSWORD not in rows


async def test_passwords_keys_and_tokens_stay_out_of_logs_and_responses(
    pool: AsyncConnectionPool, tmp_path: Path
) -> None:
    new_password = "a-brand-new-Pa55word"
    with capture_logs() as logs:
        api = await start(pool, make_config(tmp_path))
        async with api.client() as client:
            pair = await login(client)
            admin = bearer(pair["access_token"])
            await client.post("/api/auth/login", json={"username": "admin", "password": "not-the-password"})
            await client.post("/api/auth/login", json={"username": "nobody", "password": ADMIN_PASSWORD})
            await add_viewer(client, pair["access_token"])
            refreshed = (
                await client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
            ).json()
            await client.post(
                "/api/auth/change-password",
                json={"current_password": "not-the-password", "new_password": new_password},
                headers=admin,
            )
            changed = await client.post(
                "/api/auth/change-password",
                json={"current_password": ADMIN_PASSWORD, "new_password": new_password},
                headers=admin,
            )
            await client.get("/api/auth/verify", headers=admin)  # revoked now
            await client.get("/api/auth/users", headers=bearer(changed.json()["access_token"]))
            for _ in range(ATTEMPTS + 1):
                await client.post(
                    "/api/auth/login", json={"username": "vera", "password": "not-the-password"}
                )
    assert logs, "the flow logs something"
    logged = repr(logs)
    tokens = [
        pair["access_token"],
        pair["refresh_token"],
        refreshed["access_token"],
        changed.json()["access_token"],
    ]
    for secret in (ADMIN_PASSWORD, VIEWER_PASSWORD, new_password, "not-the-password", SECRET_KEY, *tokens):
        assert secret not in logged
    for body in api.bodies:
        for secret in (ADMIN_PASSWORD, VIEWER_PASSWORD, new_password, "not-the-password", SECRET_KEY):
            assert secret not in body
        # A token is in a body only when a login, a refresh or a password change has just issued it.
        if any(token in body for token in tokens):
            assert {"access_token", "refresh_token"} <= json.loads(body).keys()


async def test_the_openapi_schema_shows_the_bearer_scheme(api: Api) -> None:
    schema = api.app.openapi()
    assert schema["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An access token from POST /api/auth/login",
    }
    assert schema["paths"]["/api/auth/users"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in schema["paths"]["/api/auth/login"]["post"]
