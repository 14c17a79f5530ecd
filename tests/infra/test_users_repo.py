"""The API users' repository and migration 0006 (roles, token versions, the `user_change` audit action)."""

from __future__ import annotations

import msgspec
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from infra.db import migrate
from infra.db.connection import Database
from infra.db.errors import ConstraintViolation, DuplicateKey, MigrationError, NotFound
from infra.db.repositories.audit import AuditRepository
from infra.db.repositories.users import User, UserRepository
from schemas.enums import AuditAction
from schemas.trading import AuditEvent

T0 = 1_800_000_000_000
HASH = "$2b$04$" + "x" * 53  # the repository stores what it is given


async def test_create_read_and_list_users_without_their_hash(pool: AsyncConnectionPool) -> None:
    users = UserRepository(pool)
    assert await users.count() == 0
    ada = await users.create("ada", HASH, "admin", created_ms=T0)
    tom = await users.create("tom", "$2b$04$other", "trader", created_ms=T0 + 1)
    assert ada == User(
        id=ada.id, username="ada", role="admin", is_active=True, token_version=0, created_ms=T0
    )
    assert await users.get_by_username("tom") == tom
    assert await users.get_by_id(ada.id) == ada
    assert await users.get_by_username("nobody") is None
    assert await users.get_by_id(-1) is None
    assert await users.list() == [ada, tom]
    assert await users.count() == 2
    assert await users.password_hash("ada") == HASH
    assert await users.password_hash("nobody") is None
    assert not any("hash" in f.name for f in msgspec.structs.fields(User))
    assert HASH not in msgspec.json.encode(await users.list()).decode()


async def test_duplicates_unknown_roles_and_unknown_users_are_clear_errors(pool: AsyncConnectionPool) -> None:
    users = UserRepository(pool)
    await users.create("ada", HASH, "admin")
    with pytest.raises(DuplicateKey, match="user 'ada' already exists"):
        await users.create("ada", HASH, "viewer")
    with pytest.raises(ConstraintViolation, match="users_role_check"):
        await users.create("eve", HASH, "root")  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="no user 'nobody'"):
        await users.set_active("nobody", False)


async def test_a_password_change_bumps_the_token_version(pool: AsyncConnectionPool) -> None:
    users = UserRepository(pool)
    ada = await users.create("ada", HASH, "admin", created_ms=T0)
    changed = await users.set_password("ada", "$2b$04$new", changed_ms=T0 + 5_000)
    assert (changed.token_version, changed.password_changed_ms) == (1, T0 + 5_000)
    assert await users.password_hash("ada") == "$2b$04$new"
    assert (await users.set_password("ada", "$2b$04$newer")).token_version == 2

    assert (await users.set_role("ada", "viewer")).role == "viewer"
    assert (await users.set_active("ada", False)).is_active is False
    await users.touch_login(ada.id, T0 + 9_000)
    final = await users.get_by_id(ada.id)
    assert final is not None
    assert (final.last_login_ms, final.token_version, final.role, final.is_active) == (
        T0 + 9_000,
        2,
        "viewer",
        False,
    )


def test_every_audit_action_exists_in_the_database_enum(db: Database) -> None:
    with db.connect() as conn:
        labels = [
            r[0]
            for r in conn.execute(
                "SELECT enumlabel FROM pg_enum WHERE enumtypid = 'audit_action'::regtype ORDER BY enumsortorder"
            )
        ]
    assert labels == [str(a) for a in AuditAction]


def _users_columns(db: Database) -> set[str]:
    with db.connect() as conn:
        return {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
            )
        }


def test_0006_downgrades_and_upgrades_again(db: Database) -> None:
    assert migrate.current_revision(db) == migrate.head_revision() == "0006"
    assert {"token_version", "password_changed_at"} <= _users_columns(db)

    assert migrate.downgrade(db, "0005") == "0005"
    assert not {"token_version", "password_changed_at"} & _users_columns(db)
    with db.connect() as conn:
        labels = {
            r[0]
            for r in conn.execute("SELECT enumlabel FROM pg_enum WHERE enumtypid = 'audit_action'::regtype")
        }
        assert "user_change" not in labels and "pipeline_run_failed" in labels
        conn.execute("INSERT INTO users (username, password_hash) VALUES ('old', 'h')")
        assert conn.execute("SELECT role FROM users").fetchone() == ("admin",)  # 0001's default is back
    with db.connect() as conn, pytest.raises(psycopg.errors.CheckViolation, match="users_role_check"):
        conn.execute("INSERT INTO users (username, password_hash, role) VALUES ('t', 'h', 'trader')")

    assert migrate.upgrade(db) == "0006"
    with db.connect() as conn:
        conn.execute("INSERT INTO users (username, password_hash, role) VALUES ('t', 'h', 'trader')")
        rows = conn.execute("SELECT username, role, token_version FROM users ORDER BY id").fetchall()
    assert rows == [("old", "admin", 0), ("t", "trader", 0)]


async def test_0006_refuses_to_downgrade_over_traders_or_user_change_audit_rows(db: Database) -> None:
    with db.connect() as conn:
        conn.execute("INSERT INTO users (username, password_hash, role) VALUES ('t', 'h', 'trader')")
    with pytest.raises(MigrationError, match="1 users have the role 'trader'"):
        migrate.downgrade(db, "0005")

    with db.connect() as conn:
        conn.execute("UPDATE users SET role = 'viewer'")
    pool = await db.open_pool(min_size=1, max_size=1)
    try:
        await AuditRepository(pool).append(
            AuditEvent(action=AuditAction.USER_CHANGE, entity_type="user", entity_id="t", actor="daemon")
        )
    finally:
        await pool.close()
    with pytest.raises(MigrationError, match="audit_log holds 1 'user_change' rows"):
        migrate.downgrade(db, "0005")
    assert migrate.current_revision(db) == "0006"
