"""The demo's final summary, read from the database (what the processes wrote, not what they said)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from infra.db.connection import Database

METRICS = ("macro_f1_10s", "macro_f1_30s", "macro_f1_60s", "log_loss_60s")


@dataclass(frozen=True)
class Decisions:
    """What became of the strategies' votes and of the consensus signals: a run with no order says why.

    A vote is stored with `sent` (its expected edge reached MIN_EXPECTED_EDGE_BPS; docs/strategies.md §4);
    the decision engine stores a `decision` signal whenever a consensus's outcome changes (sent, below_cost,
    vetoed, blocked, …; docs/decisions.md), so `outcomes` counts those changes, most frequent first.
    """

    votes_sent: int
    votes_below_cost: int
    outcomes: dict[str, int]

    def describe(self) -> str:
        outcomes = ", ".join(f"{outcome} {n}" for outcome, n in self.outcomes.items()) or "none"
        return f"votes {self.votes_sent} sent, {self.votes_below_cost} below cost; decisions: {outcomes}"


def read_decisions(conn: psycopg.Connection[Any], since_ms: int) -> Decisions:
    """On the caller's connection (the demo's activity line asks every second), whatever its row factory."""
    since = {"t": since_ms}
    cur = conn.cursor(row_factory=tuple_row)
    sent, below = cur.execute(
        """SELECT count(*) FILTER (WHERE (context->>'sent')::boolean),
                  count(*) FILTER (WHERE NOT (context->>'sent')::boolean)
           FROM signals WHERE source NOT IN ('consensus', 'decision') AND context->>'sent' IS NOT NULL
             AND created_at >= to_timestamp(%(t)s / 1000.0)""",
        since,
    ).fetchone() or (0, 0)
    rows = cur.execute(
        """SELECT coalesce(context->>'outcome', 'unknown'), count(*) FROM signals
           WHERE source = 'decision' AND created_at >= to_timestamp(%(t)s / 1000.0)
           GROUP BY 1 ORDER BY 2 DESC, 1""",
        since,
    ).fetchall()
    return Decisions(int(sent), int(below), {str(outcome): int(n) for outcome, n in rows})


@dataclass
class Summary:
    rows_by_symbol: dict[str, int]
    live_rows: int
    partitions: dict[str, int]
    models: list[dict[str, Any]]
    drift: list[dict[str, Any]]
    retraining: list[dict[str, Any]]
    model_loads: list[str]
    signals: dict[str, dict[str, int]]
    decisions: Decisions
    orders: dict[str, int]
    fills: int
    fees: Decimal
    realised_pnl: Decimal
    open_positions: int
    reconciliation: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            "rows recorded: "
            + ", ".join(f"{s} {n:,}" for s, n in self.rows_by_symbol.items())
            + f" (the trading daemon recorded {self.live_rows:,} of them during this run)",
            "partitions materialised: " + ", ".join(f"{a} {n}" for a, n in self.partitions.items()),
            "model versions:",
        ]
        header = f"  {'version':<34} {'type':<18} {'status':<11}" + "".join(f" {m:>13}" for m in METRICS)
        out.append(header)
        for m in self.models:
            values = "".join(
                f" {m['metrics'][k]:>13.3f}" if k in m["metrics"] else f" {'-':>13}" for k in METRICS
            )
            out.append(f"  {m['version']:<34} {m['model_type']:<18} {m['status']:<11}{values}")
        out.append(
            "drift after the regime shift: "
            + (
                ", ".join(f"{d['symbol']} {d['severity']} (score {d['score']:.2f})" for d in self.drift)
                or "not judged"
            )
        )
        for r in self.retraining:
            out.append(
                f"retraining ({r['trigger']}): {r['status']} {r['candidate'] or ''} — {r['reason']}".rstrip()
            )
        out.append("models the trading daemon loaded: " + (", ".join(self.model_loads) or "none"))
        out.append(
            "signals per strategy: "
            + (
                "; ".join(
                    f"{source} " + ", ".join(f"{a} {n}" for a, n in sorted(actions.items()))
                    for source, actions in sorted(self.signals.items())
                )
                or "none"
            )
        )
        out.append("what became of them: " + self.decisions.describe())
        out.append(
            "orders: "
            + (", ".join(f"{s} {n}" for s, n in sorted(self.orders.items())) or "none")
            + f"; fills {self.fills}; fees {self.fees:.4f} USDT; realised PnL {self.realised_pnl:.4f} USDT; "
            f"open positions {self.open_positions}"
        )
        rec = self.reconciliation
        out.append(
            f"reconciliation: {rec.get('passes', 0)} passes, {rec.get('failed', 0)} failed, "
            f"{rec.get('discrepancies', 0)} discrepancies"
        )
        return out


def read_summary(
    db: Database, *, since_ms: int, drift_window_ms: int | None, partitions: dict[str, int]
) -> Summary:
    t = {"t": since_ms}
    with db.connect(dict_rows=True) as conn:

        def all_rows(sql: str, params: Any = None) -> list[dict[str, Any]]:
            return list(conn.execute(sql, params if params is not None else t).fetchall())

        since = "to_timestamp(%(t)s / 1000.0)"
        rows_by_symbol = {
            r["symbol"]: int(r["n"])
            for r in all_rows("SELECT symbol, count(*) AS n FROM market_snapshots GROUP BY 1 ORDER BY 1", ())
        }
        live = all_rows(f"SELECT count(*) AS n FROM market_snapshots WHERE ts >= {since}")[0]["n"]
        models = [
            {
                **r,
                "metrics": {
                    k: float(v) for k, v in (r["metrics"] or {}).items() if isinstance(v, int | float)
                },
            }
            for r in all_rows(
                "SELECT version, model_type, status::text AS status, metrics FROM model_versions "
                "ORDER BY created_at",
                (),
            )
        ]
        drift = (
            []
            if drift_window_ms is None
            else all_rows(
                """SELECT DISTINCT ON (symbol) symbol, severity, feature_drift_score AS score FROM drift_reports
                   WHERE window_start = to_timestamp(%(w)s / 1000.0) ORDER BY symbol, id DESC""",
                {"w": drift_window_ms},
            )
        )
        retraining = all_rows(
            "SELECT trigger, status, candidate_version AS candidate, reason FROM retraining_runs ORDER BY id",
            (),
        )
        loads = [
            f"{r['entity_id']} as {r['role']} (on {r['reason']})"
            for r in all_rows(
                f"""SELECT entity_id, reason, new_value->>'role' AS role FROM audit_log
                    WHERE action = 'model_load' AND success AND ts >= {since} ORDER BY id"""
            )
        ]
        signals: dict[str, dict[str, int]] = {}
        for r in all_rows(
            f"SELECT source, action::text AS action, count(*) AS n FROM signals WHERE created_at >= {since} "
            "GROUP BY 1, 2"
        ):
            signals.setdefault(r["source"], {})[r["action"]] = int(r["n"])
        orders = {
            r["status"]: int(r["n"])
            for r in all_rows(
                f"SELECT status::text AS status, count(*) AS n FROM orders WHERE created_at >= {since} GROUP BY 1"
            )
        }
        fills = all_rows(
            f"SELECT count(*) AS n, coalesce(sum(fee), 0) AS fees FROM fills WHERE executed_at >= {since}"
        )[0]
        positions = all_rows(
            f"""SELECT coalesce(sum(realized_pnl), 0) AS pnl,
                       count(*) FILTER (WHERE status::text <> 'Closed') AS open
                FROM positions WHERE created_at >= {since}"""
        )[0]
        decisions = read_decisions(conn, since_ms)
        rec = all_rows(
            f"""SELECT count(*) AS passes, count(*) FILTER (WHERE NOT success) AS failed,
                       coalesce(sum((summary->>'discrepancies')::int), 0) AS discrepancies
                FROM reconciliation_runs WHERE started_at >= {since}"""
        )[0]
    return Summary(
        rows_by_symbol=rows_by_symbol,
        live_rows=int(live),
        partitions=partitions,
        models=models,
        drift=drift,
        retraining=retraining,
        model_loads=loads,
        signals=signals,
        decisions=decisions,
        orders=orders,
        fills=int(fills["n"]),
        fees=Decimal(fills["fees"]),
        realised_pnl=Decimal(positions["pnl"]),
        open_positions=int(positions["open"]),
        reconciliation={k: int(v) for k, v in rec.items()},
    )
