"""Reading the soak's evidence: the daemon's JSON logs, the database, and the exchange's own order book-keeping.

Counters the daemon keeps in memory die with a SIGKILL; its log lines do not (one JSON object per line,
written as it happens, one file per UTC day under LOG_DIR), so the fault figures are counted there, over
every incarnation of the daemon. Orders, fills and audit rows come from the database and are compared with
what the exchange reports over REST with the account's credentials.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from depthcharge.soak.measures import BookRow, ExchangeOrder
from infra.db.connection import Database
from infra.db.repositories import verify_chain
from trading_daemon.exchange.http import BybitHttpClient
from trading_daemon.exchange.rest import BybitRestClient

# Log events the soak counts (their producers: market/feed.py, resilience/circuit_breaker.py,
# exchange/websocket.py, ml_gate/gate.py, recorder/channel.py, service.py).
RESYNC = "order book resync"
BREAKER_OPENED = "circuit_breaker_opened"
WS_RECONNECTED = "bybit ws reconnected"
MODEL_SWAPPED = "production model swapped"
READY = "daemon ready"
SPOOLING = "recorder database unreachable, spooling"
BACKFILLED = "recorder back-filled a spool file"


@dataclass
class LogEvidence:
    events: collections.Counter[str] = field(default_factory=collections.Counter)
    swaps: list[dict[str, Any]] = field(default_factory=list)  # every "production model swapped" line
    errors: list[str] = field(default_factory=list)  # error/critical events, first of each kind

    def count(self, event: str) -> int:
        return self.events[event]


def read_logs(log_dir: Path) -> LogEvidence:
    """Count the daemon's log events over every `bot_YYYYMMDD.log` in `log_dir`."""
    evidence = LogEvidence()
    seen_errors: set[str] = set()
    for path in sorted(log_dir.glob("bot_[0-9]*.log")):
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by the SIGKILL
                event = str(record.get("event", ""))
                evidence.events[event] += 1
                if event == MODEL_SWAPPED:
                    evidence.swaps.append(record)
                if record.get("level") in ("error", "critical") and event not in seen_errors:
                    seen_errors.add(event)
                    evidence.errors.append(f"{event} ({record.get('logger')})")
    return evidence


def log_time_ms(record: dict[str, Any]) -> int | None:
    """A log line's timestamp (ISO 8601, UTC) in epoch ms."""
    stamp = record.get("timestamp")
    if not isinstance(stamp, str):
        return None
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass
class DatabaseEvidence:
    snapshot_ts: dict[str, list[int]]
    book_rows: list[BookRow]
    order_ids: set[str]  # client order ids in `orders`
    orders_by_status: dict[str, int]
    fills: set[str]  # exec ids of trade fills
    funding: int
    order_events: list[tuple[str, str]]  # (client order id, to_status)
    audited_statuses: list[tuple[str, str]]  # (client order id, new_value status) of order audit rows
    audited_orders: set[str]
    audited_fills: set[str]
    chain_rows: int
    chain_problems: int
    reconciliations: int
    reconciliations_failed: int
    model_loads: int  # model_load audit rows


def read_database(db: Database, symbols: list[str]) -> DatabaseEvidence:
    """Everything the measures read from the database (blocking: run it in a thread)."""
    with db.connect() as conn:
        snapshot_ts: dict[str, list[int]] = {s: [] for s in symbols}
        book_rows: list[BookRow] = []
        cur = conn.execute(
            """SELECT symbol, (extract(epoch FROM ts) * 1000)::bigint, book_reset, book_update_id,
                      n_bid_levels, n_ask_levels, bid_prices, bid_sizes, ask_prices, ask_sizes
               FROM market_snapshots ORDER BY symbol, ts"""
        )
        for symbol, ts, reset, u, nb, na, bp, bs, ap, asz in cur:
            snapshot_ts.setdefault(symbol, []).append(ts)
            book_rows.append(BookRow(symbol, ts, reset, u, bp, bs, ap, asz, nb, na))
        orders = conn.execute("SELECT client_order_id, status::text FROM orders").fetchall()
        fills = conn.execute("SELECT exec_id, exec_type::text FROM fills").fetchall()
        events = conn.execute(
            """SELECT o.client_order_id, e.to_status::text FROM order_events e JOIN orders o ON o.id = e.order_id"""
        ).fetchall()
        audits = conn.execute(
            """SELECT entity_type, entity_id, action::text, new_value->>'status' FROM audit_log
               WHERE entity_type IN ('Order', 'Fill', 'FundingPayment') OR action = 'model_load'"""
        ).fetchall()
        runs = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT success) FROM reconciliation_runs"
        ).fetchone()
        chain = verify_chain(conn)
    assert runs is not None
    return DatabaseEvidence(
        snapshot_ts=snapshot_ts,
        book_rows=book_rows,
        order_ids={c for c, _ in orders},
        orders_by_status=dict(collections.Counter(s for _, s in orders)),
        fills={e for e, t in fills if t != "Funding"},
        funding=sum(1 for _, t in fills if t == "Funding"),
        order_events=[(c, s) for c, s in events],
        audited_statuses=[(eid, st) for et, eid, _, st in audits if et == "Order" and st is not None],
        audited_orders={eid for et, eid, _, _ in audits if et == "Order"},
        audited_fills={eid for et, eid, _, _ in audits if et in ("Fill", "FundingPayment")},
        chain_rows=chain.rows_checked,
        chain_problems=len(chain.problems),
        reconciliations=runs[0],
        reconciliations_failed=runs[1],
        model_loads=sum(1 for _, _, action, _ in audits if action == "model_load"),
    )


def last_reconciliation_ms(db: Database) -> int | None:
    """Start of the newest successful reconciliation pass, in epoch ms."""
    with db.connect() as conn:
        row = conn.execute(
            "SELECT (extract(epoch FROM max(started_at)) * 1000)::bigint FROM reconciliation_runs WHERE success"
        ).fetchone()
    return None if row is None else row[0]


@dataclass
class ExchangeEvidence:
    orders: list[ExchangeOrder]
    fills: dict[str, int]  # trade exec id → exchange time
    funding: int


async def read_exchange(base_url: str, api_key: str, api_secret: str, symbols: list[str]) -> ExchangeEvidence:
    """Every order and execution of the account, as the exchange reports them over REST."""
    rest = BybitRestClient(BybitHttpClient(base_url, api_key=api_key, api_secret=api_secret))
    orders: dict[str, ExchangeOrder] = {}
    fills: dict[str, int] = {}
    funding = 0
    try:
        await rest.http.sync_time()
        for symbol in symbols:
            history = await rest.get_order_history(symbol, max_items=None)
            live = await rest.get_open_orders(symbol, max_items=None)
            for o in [*history, *live]:
                tif = "" if o.time_in_force is None else str(o.time_in_force)
                orders[o.order_id] = ExchangeOrder(o.order_id, o.order_link_id, tif, o.created_ms)
            for f in await rest.get_executions(symbol, max_items=None):
                if str(f.exec_type) == "Funding":
                    funding += 1
                else:
                    fills[f.exec_id] = f.ts
    finally:
        await rest.close()
    return ExchangeEvidence(list(orders.values()), fills, funding)
