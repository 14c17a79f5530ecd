"""The crash test: a real `depthcharge daemon` trading scripted intents at a high rate against the paper
exchange and a real Postgres is SIGKILLed at random moments — including between the intent's write and the
submit, and between the submit and its acknowledgement (named crash points) — and restarted, over and
over; once with the database restarted under it, once with its private stream dropped. Then, after a last
clean start that reconciles:

* zero duplicate orders on the exchange (one exchange order per attempt of an intent, one attempt unless
  PostOnly re-priced it),
* every exchange order known to the database, in the exchange's state,
* fills equal by execId, positions and the balance equal (wallet = deposit + Σ closed PnL − fees),
* the audit chain verifies.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from exchange_sim.server.app import SimServer
from infra.db.connection import Database
from infra.db.repositories import verify_chain
from tests.trading_daemon.exchange.conftest import API_KEY, API_SECRET
from tests.trading_daemon.execution.conftest import make_rest, start_venue
from trading_daemon.execution.order_ids import is_ours

log = structlog.get_logger(__name__)

DEPOSIT = Decimal(100_000)
CRASH_POINTS = ("after_intent_write", "before_send", "after_submit_before_ack")
TRIALS = (
    23  # SIGKILLs: 12 at crash points, 9 timed, one after the database restarted, one after a stream drop
)
READY_TIMEOUT_S = 60.0


@dataclass
class Trial:
    kind: str  # "point:<name>:<n>", "timed:<s>", "db_restart", "stream_drop"
    exit_code: int | None = None
    ready: bool = False
    notes: list[str] = field(default_factory=list)


def _plan(rng: random.Random) -> list[Trial]:
    trials = [Trial(f"point:{CRASH_POINTS[i % 3]}:{rng.randint(1, 4)}") for i in range(12)]
    trials += [Trial(f"timed:{rng.uniform(0.2, 3.0):.2f}") for _ in range(8)]
    trials.insert(7, Trial("stream_drop"))
    trials.insert(15, Trial("db_restart"))
    return [Trial("lock"), *trials]  # first: a second daemon is refused while this one runs, then SIGKILL


class Daemon:
    """One `depthcharge daemon` process with a systemd notify socket to learn when it is ready."""

    def __init__(
        self, env: dict[str, str], tmp: Path, name: str, extra: dict[str, str] | None = None
    ) -> None:
        self.sock_path = tmp / f"{name}.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.sock_path))
        self.sock.setblocking(False)
        self.log = (tmp / f"{name}.log").open("wb")
        full = {**env, **(extra or {}), "NOTIFY_SOCKET": str(self.sock_path)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "depthcharge", "daemon"],
            env=full,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self) -> bool:
        """True once READY=1 arrived; False if the process ended first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        while loop.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if "READY=1" in self.sock.recv(4096).decode():
                    return True
            except BlockingIOError:
                await asyncio.sleep(0.05)
        raise AssertionError(f"daemon not ready within {READY_TIMEOUT_S} s")

    async def wait_exit(self, within: float) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.proc.poll() is None:
            if loop.time() > deadline:
                raise AssertionError("daemon did not exit in time")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)

    def close(self) -> None:
        self.kill()
        self.proc.wait()
        self.sock.close()
        self.sock_path.unlink(missing_ok=True)
        self.log.close()


def _restart_postgres(server: Any) -> None:
    """`pg_ctl restart` of the embedded server (as pgserver's system user): every connection is cut."""
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    pg = server._server
    pg_ctl(["-w", "-m", "fast", "restart"], pgdata=pg.pgdata, user=pg.system_user, timeout=60)


@pytest.mark.slow(seconds=150)
@pytest.mark.timeout(900)  # about 4.5 minutes alone on two shared cores; more under load
async def test_sigkill_trials_leave_no_duplicate_no_unknown_order_and_equal_books(
    db: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if db.source != "embedded":
        pytest.skip("the database-restart trial restarts the embedded server")
    pgdata = request.getfixturevalue("embedded_server")
    venue = await start_venue()
    rng = random.Random(11)
    env = {
        **os.environ, "DATABASE_URL": db.conninfo, "VAR_DIR": str(tmp_path / "var"), "LOG_LEVEL": "INFO",
        "TRADING_PAIRS": "BTCUSDT", "BYBIT_REST_URL": venue.base_url,
        "BYBIT_WS_PUBLIC_URL": f"{venue.ws_url}/v5/public/linear", "BYBIT_WS_PRIVATE_URL": f"{venue.ws_url}/v5/private",
        "BYBIT_API_KEY": API_KEY, "BYBIT_API_SECRET": API_SECRET, "TRADING_ENABLED": "true",
        "SCRIPTED_INTENT_INTERVAL_S": "0.15", "SCRIPTED_INTENT_NOTIONAL_USDT": "700", "RECONCILE_INTERVAL_S": "3",
        "RECV_WINDOW_MARGIN_MS": "300", "POST_ONLY_TIMEOUT_S": "1", "STARTUP_RETRY_MAX_S": "1",
        "DB_CONNECT_TIMEOUT_S": "2",
    }  # fmt: skip
    env.pop("NOTIFY_SOCKET", None)
    trials = _plan(rng)[: int(os.environ.get("DEPTHCHARGE_CRASH_TRIALS", TRIALS))]
    if os.environ.get("DEPTHCHARGE_CRASH_PLAN"):  # to chase one kind of trial: "db_restart,timed:1.5"
        trials = [Trial(kind) for kind in os.environ["DEPTHCHARGE_CRASH_PLAN"].split(",")]
    try:
        async with aiohttp.ClientSession() as session:
            for number, trial in enumerate(trials):
                await _run_trial(number, trial, env, tmp_path, venue, session, pgdata, rng)
            # The market stops taking liquidity: a resting order of ours filling after the last
            # reconciliation (and before the comparison) would be the test's race, not a daemon's fault.
            venue.venue.market.trade_share = 0.0  # type: ignore[union-attr]
            # The last start: no script; it must reconcile everything the kills left behind.
            # (A script too slow to fire keeps the decisions off: nothing new is traded.)
            final = Daemon(env, tmp_path, "final", {"SCRIPTED_INTENT_INTERVAL_S": "100000"})
            try:
                assert await final.wait_ready(), (tmp_path / "final.log").read_text()[-3000:]
                await asyncio.sleep(4.0)  # a periodic reconciliation too
                final.proc.send_signal(signal.SIGTERM)
                assert await final.wait_exit(60) == 0, (tmp_path / "final.log").read_text()[-3000:]
            finally:
                final.close()
        counts = await _compare(venue, db)
    finally:
        await venue.stop()
    summary = {
        "trials": len(trials),
        **counts,
        "kinds": collections.Counter(t.kind.split(":")[0] for t in trials),
    }
    print(f"\ncrash test: {summary}")
    (tmp_path / "summary.txt").write_text(repr(summary))
    assert counts["orders_on_exchange"] > 20 and counts["fills"] > 10, counts
    assert counts["duplicates"] == 0 and counts["unknown_orders"] == 0 and counts["mismatches"] == 0, counts
    assert counts["audit_problems"] == 0, counts


async def _run_trial(
    number: int, trial: Trial, env: dict[str, str], tmp: Path, venue: SimServer, session: aiohttp.ClientSession,
    pgdata: Any, rng: random.Random,
) -> None:  # fmt: skip
    extra: dict[str, str] = {}
    if trial.kind.startswith("point:"):
        _, point, n = trial.kind.split(":")
        extra["DEPTHCHARGE_CRASH_AT"] = f"{point}:{n}"
    daemon = Daemon(env, tmp, f"trial{number}", extra)
    try:
        trial.ready = await daemon.wait_ready()
        assert trial.ready or daemon.proc.returncode == -signal.SIGKILL, (
            tmp / f"trial{number}.log"
        ).read_text()[-3000:]
        if trial.kind == "lock":
            await _second_daemon_is_refused(env, tmp)
        elif trial.kind.startswith("point:"):
            try:
                trial.exit_code = await daemon.wait_exit(20)
            except AssertionError:
                trial.notes.append("crash point not reached: killed")
        elif trial.kind.startswith("timed:"):
            await asyncio.sleep(float(trial.kind.split(":")[1]))
        elif trial.kind == "stream_drop":
            await asyncio.sleep(1.0)
            async with session.post(f"{venue.base_url}/sim/ws/disconnect", json={"scope": "private"}) as resp:
                assert resp.status == 200
            await asyncio.sleep(1.5 + rng.random())  # trading on while the stream is down, polling REST
        elif trial.kind == "db_restart":
            await asyncio.sleep(1.0)
            await asyncio.to_thread(_restart_postgres, pgdata)
            await asyncio.sleep(3.0)  # the daemon rides it out and trades on
            assert daemon.proc.poll() is None, (tmp / f"trial{number}.log").read_text()[-3000:]
    finally:
        daemon.close()
    log.info(
        "crash trial done", number=number, kind=trial.kind, exit=daemon.proc.returncode, notes=trial.notes
    )


async def _second_daemon_is_refused(env: dict[str, str], tmp: Path) -> None:
    """Single trader: a second daemon on the same account exits 2 naming the holder."""
    second = await asyncio.to_thread(  # off the loop: the paper exchange runs on it
        subprocess.run, [sys.executable, "-m", "depthcharge", "daemon"],
        env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert second.returncode == 2, second.stderr[-2000:]
    assert "traded by another daemon: depthcharge daemon pid=" in second.stderr, second.stderr[-2000:]


async def _compare(venue: SimServer, db: Database) -> dict[str, Any]:
    rest = make_rest(venue, recv_window_ms=5000)
    try:
        history = await rest.get_order_history("BTCUSDT", max_items=None)
        open_orders = await rest.get_open_orders("BTCUSDT", max_items=None)
        executions = await rest.get_executions("BTCUSDT", max_items=None)
        positions = [p for p in await rest.get_positions() if p.size > 0]
        wallet = await rest.get_wallet_balance()
    finally:
        await rest.close()
    exchange = {o.order_link_id: o for o in [*history, *open_orders]}
    with db.connect(dict_rows=True) as conn:
        orders = {r["client_order_id"]: r for r in conn.execute(
            "SELECT client_order_id, status::text AS status, filled_quantity, intent_id, attempt, time_in_force::text AS tif "
            "FROM orders").fetchall()}  # fmt: skip
        fills = conn.execute("SELECT exec_id, exec_type::text AS t, fee, closed_pnl FROM fills").fetchall()
        live = conn.execute(
            "SELECT side::text AS side, quantity, status::text AS status FROM positions WHERE status <> 'Closed'"
        ).fetchall()
        chain = verify_chain(conn)
    # Duplicates: more than one exchange order for one attempt of an intent, or several attempts of an intent
    # that was not PostOnly (only a PostOnly re-price makes a second attempt).
    per_intent: dict[str, list[str]] = collections.defaultdict(list)
    for link_id in exchange:
        row = orders.get(link_id)
        if row is not None and row["intent_id"]:
            per_intent[row["intent_id"]].append(link_id)
    duplicates = sum(
        len(ids) - 1 for intent, ids in per_intent.items()
        if len(ids) > 1 and orders[ids[0]]["tif"] != "PostOnly"
    ) + sum(1 for o in [*history, *open_orders] if not is_ours(o.order_link_id))  # fmt: skip
    unknown = [link_id for link_id in exchange if link_id not in orders]
    status_mismatch = [
        f"{link_id}: database {orders[link_id]['status']} {orders[link_id]['filled_quantity']}, exchange "
        f"{o.status} {o.filled_quantity} (intent {orders[link_id]['intent_id']})"
        for link_id, o in exchange.items()
        if link_id in orders and (orders[link_id]["status"] != str(o.order_status)
                                  or orders[link_id]["filled_quantity"] != o.filled_quantity)
    ]  # fmt: skip
    db_pending = [c for c, r in orders.items() if r["status"] == "Pending"]
    exchange_execs = {e.exec_id for e in executions}
    db_execs = {f["exec_id"] for f in fills}
    fills_mismatch = len(exchange_execs ^ db_execs)
    exch_pos = {(str(p.side), p.size) for p in positions}
    # An entry still resting on the exchange (the market stopped trading before the comparison) keeps its
    # position Opening and empty: that is the database's record of it, not a position to compare.
    entry_resting = any(not o.reduce_only for o in open_orders)
    db_pos = {
        (r["side"], r["quantity"])
        for r in live
        if not (r["status"] == "Opening" and r["quantity"] == 0 and entry_resting)
    }
    position_mismatch = int(exch_pos != db_pos)
    ledger = (
        DEPOSIT
        + sum((f["closed_pnl"] or 0) - f["fee"] for f in fills if f["t"] != "Funding")
        - sum(f["fee"] for f in fills if f["t"] == "Funding")
    )
    balance_mismatch = int(ledger != wallet.total_wallet_balance)
    return {
        "orders_on_exchange": len(exchange),
        "orders_in_db": len(orders),
        "failed_in_db": sum(1 for r in orders.values() if r["status"] == "Failed"),
        "fills": len(db_execs),
        "duplicates": duplicates,
        "unknown_orders": len(unknown),
        "status_mismatches": len(status_mismatch),
        "pending_left": len(db_pending),
        "fills_mismatch": fills_mismatch,
        "position_mismatch": position_mismatch,
        "balance_mismatch": balance_mismatch,
        "mismatches": len(status_mismatch) + len(db_pending) + fills_mismatch + position_mismatch + balance_mismatch,
        "audit_rows": chain.rows_checked,
        "audit_problems": len(chain.problems),
        "wallet": str(wallet.total_wallet_balance),
        "ledger_balance": str(ledger),
        "details": {"unknown": unknown[:5], "status": status_mismatch[:5], "pending": db_pending[:5],
                    "fills": [(e.exec_id, e.client_order_id, str(e.exec_type)) for e in executions
                              if e.exec_id in exchange_execs - db_execs][:5],
                    "positions": [sorted(exch_pos), sorted(db_pos)],
                    "live_positions": [(r["side"], str(r["quantity"]), r["status"]) for r in live],
                    "open_orders": [(o.order_link_id, str(o.side), o.reduce_only, str(o.order_status))
                                    for o in open_orders][:5]},
    }  # fmt: skip
