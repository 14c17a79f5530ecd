"""The soak's summary: what was done to the daemon, what it did, and the figures that must be zero."""

from __future__ import annotations

from dataclasses import dataclass, field

from depthcharge.soak.measures import AuditLoss, BookCheck, Duplicates, SnapshotGaps


@dataclass(frozen=True)
class EventRecord:
    """A scheduled fault as it happened: planned and actual second of the run, and what came of it."""

    planned_s: float
    actual_s: float
    kind: str
    note: str = ""


@dataclass
class SoakSummary:
    seconds: float
    seed: int
    database: str
    run_dir: str
    events: list[EventRecord] = field(default_factory=list)
    # What happened to the daemon (evidence: its logs, its exit statuses, the soak's own actions).
    incarnations: int = 0
    sigkills: int = 0  # daemons that died of the soak's SIGKILL (exit status -9)
    restarts_ready: int = 0  # incarnations after the first that reached READY=1
    db_restarts: int = 0
    ws_disconnects: int = 0  # disconnects the soak asked the exchange for
    ws_reconnects: int = 0
    resyncs: int = 0
    breaker_trips: int = 0
    spool_outages: int = 0  # recorder "database unreachable, spooling" lines
    spool_backfills: int = 0
    promoted: str | None = None
    swapped: bool = False
    swap_latency_ms: int | None = None
    daemon_errors: list[str] = field(default_factory=list)
    unexpected_exits: int = 0  # daemons that ended without the soak asking
    rest_faults: dict[str, int] = field(default_factory=dict)  # injected REST failures, by kind
    # Trading (database, and the exchange's own view).
    orders: int = 0
    orders_by_status: dict[str, int] = field(default_factory=dict)
    exchange_orders: int = 0
    fills: int = 0
    exchange_fills: int = 0
    reconciliations: int = 0
    reconciliations_failed: int = 0
    # The must-be-zero figures.
    duplicates: Duplicates = field(default_factory=lambda: Duplicates(0, 0, 0))
    unknown_orders: list[str] = field(default_factory=list)
    missing_fills: list[str] = field(default_factory=list)
    audit: AuditLoss = field(default_factory=lambda: AuditLoss(0, 0, 0, 0))
    audit_rows: int = 0
    snapshots: SnapshotGaps = field(default_factory=lambda: SnapshotGaps(0, 0, 0))
    book: BookCheck = field(default_factory=lambda: BookCheck(0, 0, 0, 0))

    def must_be_zero(self) -> dict[str, int]:
        return {
            "duplicate orders": self.duplicates.total,
            "exchange orders unknown to the database": len(self.unknown_orders),
            "exchange fills missing from the database": len(self.missing_fills),
            "unexpected daemon exits": self.unexpected_exits,
            "lost audit rows": self.audit.total,
            "lost snapshot rows": self.snapshots.lost,
            "book mismatches": self.book.mismatches,
        }

    def failures(self) -> list[str]:
        """The names of the must-be-zero figures that are not zero."""
        return [name for name, value in self.must_be_zero().items() if value]

    def render(self) -> str:
        lines = [
            f"soak: {self.seconds:g} s, seed {self.seed}, database {self.database}, run directory {self.run_dir}",
            "",
            "faults (planned s → actual s):",
            *(
                f"  {e.planned_s:7.1f} → {e.actual_s:7.1f}  {e.kind}" + (f": {e.note}" if e.note else "")
                for e in self.events
            ),
            "",
            "what the daemon went through:",
            f"  incarnations {self.incarnations}; SIGKILLs {self.sigkills}; restarts that came back ready "
            f"{self.restarts_ready}",
            f"  database restarts {self.db_restarts}; recorder spooled {self.spool_outages} time(s), "
            f"back-filled {self.spool_backfills} spool file(s)",
            f"  WebSocket disconnects {self.ws_disconnects}, reconnects {self.ws_reconnects}; "
            f"book resyncs {self.resyncs}; circuit-breaker trips {self.breaker_trips}",
            f"  model promotion: {self.promoted or 'none'}; hot-swapped: "
            + (f"yes, {self.swap_latency_ms} ms after the commit" if self.swapped else "NO"),
            "  REST failures injected: "
            + (", ".join(f"{k} {v}" for k, v in self.rest_faults.items()) or "none"),
            f"  daemon error events: {', '.join(self.daemon_errors) if self.daemon_errors else 'none'}",
            "",
            "trading:",
            f"  orders {self.orders} in the database ("
            + ", ".join(f"{k} {v}" for k, v in sorted(self.orders_by_status.items()))
            + f"), {self.exchange_orders} on the exchange",
            f"  fills {self.fills} in the database, {self.exchange_fills} on the exchange; reconciliation passes "
            f"{self.reconciliations} ({self.reconciliations_failed} failed)",
            "",
            "must be zero:",
            f"  duplicate orders                          {self.duplicates.total:>6}  (same orderLinkId "
            f"{self.duplicates.same_link_id}, extra attempts {self.duplicates.extra_attempts}, foreign "
            f"{self.duplicates.foreign})",
            f"  exchange orders unknown to the database   {len(self.unknown_orders):>6}",
            f"  exchange fills missing from the database  {len(self.missing_fills):>6}",
            f"  unexpected daemon exits                   {self.unexpected_exits:>6}",
            f"  lost audit rows                           {self.audit.total:>6}  ({self.audit_rows} rows, chain "
            f"problems {self.audit.chain_problems}; transitions {self.audit.transitions_without_audit}, fills "
            f"{self.audit.fills_without_audit}, orders {self.audit.orders_without_audit} without one)",
            f"  lost snapshot rows                        {self.snapshots.lost:>6}  ({self.snapshots.rows} rows; "
            f"{self.snapshots.excused} missing while the daemon was down, excused)",
            f"  book mismatches                           {self.book.mismatches:>6}  ({self.book.checked} rows "
            f"checked against the exchange at their update id, {self.book.after_resync} first rows after a "
            f"resync or reload; {self.book.unverified} unverified)",
        ]
        examples = [
            *self.duplicates.examples,
            *(f"unknown order {c}" for c in self.unknown_orders[:5]),
            *(f"missing fill {e}" for e in self.missing_fills[:5]),
            *self.audit.examples,
            *(g.describe() for g in self.snapshots.gaps[:5]),
            *self.book.examples,
        ]
        if examples:
            lines += ["", "examples:", *(f"  {e}" for e in examples)]
        failed = self.failures()
        lines += ["", f"FAILED: {', '.join(failed)}" if failed else "all must-be-zero figures are zero"]
        return "\n".join(lines)
