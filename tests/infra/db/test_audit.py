from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys

import psycopg
import pytest

from infra.db.connection import Database
from infra.db.repositories import AuditRepository, verify_chain
from infra.db.repositories.audit import GENESIS_HASH
from schemas.enums import AuditAction
from schemas.trading import AuditEvent


def _event(i: int, **kw: object) -> AuditEvent:
    fields: dict[str, object] = dict(
        action=AuditAction.POSITION_CLOSE,
        entity_type="Position",
        entity_id=str(i),
        old_value={"status": "Open", "unrealized_pnl": 50.0},
        new_value={"status": "Closed", "realized_pnl": 75.5},
        reason="Take profit target reached",
        trace_id=f"trace-{i % 2}",
        context={
            "exit_market_data": {"price": 50100.0, "imbalance": 0.4, "spread": 0.8},
            "n": 10**20,
            "z": 1e-7,
        },
    )
    fields.update(kw)
    return AuditEvent(**fields)  # type: ignore[arg-type]


async def _fill(pool, n: int = 5) -> list[AuditEvent]:
    repo = AuditRepository(pool)
    return [await repo.append(_event(i)) for i in range(n)]


async def test_append_chains_hashes_and_queries(pool, db: Database) -> None:
    events = await _fill(pool)
    assert events[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.row_hash for a, b in itertools.pairwise(events))
    repo = AuditRepository(pool)
    history = await repo.by_entity("Position", "3")
    assert [e.id for e in history] == [events[3].id]
    assert history[0].context == {
        "exit_market_data": {"price": 50100.0, "imbalance": 0.4, "spread": 0.8},
        "n": 10**20,
        "z": 1e-7,
    }
    assert [e.id for e in await repo.by_trace_id("trace-1")] == [events[1].id, events[3].id]
    with db.connect() as conn:
        report = verify_chain(conn)
    assert report.ok and report.rows_checked == 5 and report.last_hash == events[-1].row_hash


async def test_concurrent_appends_keep_one_linear_chain(pool, db: Database) -> None:
    import asyncio

    repo = AuditRepository(pool)
    await asyncio.gather(*(repo.append(_event(i)) for i in range(20)))
    with db.connect() as conn:
        report = verify_chain(conn)
    assert report.ok and report.rows_checked == 20


async def test_update_and_delete_rejected(pool, db: Database) -> None:
    await _fill(pool, 2)
    with db.connect() as conn:
        for statement in ("UPDATE audit_log SET reason = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="audit_log is append-only"):
                conn.execute(statement)
            conn.rollback()
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (2,)


def _tamper(db: Database, statement: str) -> None:
    """What a superuser could do: switch the trigger off, change history, switch it back on."""
    with db.connect() as conn, conn.transaction():
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete")
        conn.execute(statement)
        conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update_delete")


async def test_verify_detects_edited_row(pool, db: Database) -> None:
    events = await _fill(pool)
    _tamper(db, f"UPDATE audit_log SET new_value = '{{\"realized_pnl\": 999}}' WHERE id = {events[2].id}")
    with db.connect() as conn:
        report = verify_chain(conn)
    assert [(p.id, p.kind) for p in report.problems] == [(events[2].id, "content")]


async def test_verify_detects_deleted_row(pool, db: Database) -> None:
    events = await _fill(pool)
    _tamper(db, f"DELETE FROM audit_log WHERE id = {events[1].id}")
    with db.connect() as conn:
        report = verify_chain(conn)
    assert [(p.id, p.kind) for p in report.problems] == [(events[2].id, "link")]


async def test_audit_verify_command(pool, db: Database) -> None:
    events = await _fill(pool, 3)
    env = {**os.environ, "DATABASE_URL": db.conninfo}
    ok = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "depthcharge", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "audit log intact: 3 rows" in ok.stdout
    _tamper(db, f"UPDATE audit_log SET success = false WHERE id = {events[0].id}")
    bad = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "depthcharge", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert f"row {events[0].id}: content" in bad.stderr and "TAMPERED" in bad.stderr
