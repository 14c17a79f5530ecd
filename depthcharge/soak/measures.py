"""The soak's must-be-zero figures, each a pure function of evidence read from the exchange, the database and
the daemon's logs (`evidence.py` reads it), so each can be tested on a planted loss.

* **Lost snapshot rows** (`snapshot_gaps`): the daemon builds one row per symbol every SNAPSHOT_INTERVAL_MS
  on a fixed grid, whether the book is valid or not, and a database outage spools rows to be back-filled.
  So while the daemon runs, each symbol's stored `ts` sequence has no hole: every step larger than the
  interval is `step / interval − 1` lost rows — unless the daemon was down in between (a SIGKILL loses the
  rows still in memory and builds none until it is back; a planned restart builds none either). A hole is
  excused only when it overlaps a window in which the soak had the daemon down.
* **Book mismatches** (`book_mismatches`): every row carries the update id `u` of the book it was cut from;
  the exchange's tap (`booktap.py`) knows what `orderbook.50` published at that `u`. A row whose top 50
  levels, turned back into integer ticks and lots, differ from the exchange's at the same `u` is a
  mismatch. Rows of an invalid book (no levels) are skipped; the first row cut from a freshly loaded
  snapshot (`book_reset` with levels: after a resync, a reconnect or a start) is counted apart, so the
  figure shows that books after a resync were checked.
* **Duplicate orders** (`duplicate_orders`): the exchange's own order list (REST, every order of the
  account). Order link ids are `<slug>-<sha256(intent)>-<attempt>` (trading_daemon/execution/order_ids.py):
  one exchange order per link id, one attempt per intent unless the intent was PostOnly (a re-priced
  PostOnly is a new attempt). Extra exchange orders under one link id, extra attempts of a non-PostOnly
  intent, and orders the daemon's id scheme did not make are duplicates.
* **Orders unknown to the database** (`unknown_orders`): exchange orders created before the final
  reconciliation whose link id the `orders` table lacks; **fills missing** likewise for executions.
* **Lost audit rows** (`lost_audit_rows`): an order's transition writes an `order_events` row and its
  audit row in one transaction (trading_daemon/execution/ledger.py), so per order the multiset of
  `order_events.to_status` must be covered by the audit rows' `new_value.status`; every `fills` row must
  have its `fill` audit row; every exchange order the database knows must have audit rows; and the hash
  chain must verify (a deleted or altered row breaks it).
"""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from depthcharge.soak.booktap import Digest, book_digest
from trading_daemon.execution.order_ids import is_ours

Window = tuple[int, int]  # [start, end] in exchange ms


@dataclass(frozen=True)
class Gap:
    symbol: str
    after_ms: int
    before_ms: int
    missing: int

    def describe(self) -> str:
        return f"{self.symbol}: {self.missing} rows between {self.after_ms} and {self.before_ms}"


@dataclass(frozen=True)
class SnapshotGaps:
    rows: int
    lost: int  # rows missing while the daemon was up
    excused: int  # rows missing across a window in which the daemon was down
    gaps: tuple[Gap, ...] = ()  # the unexcused ones


def snapshot_gaps(
    ts_by_symbol: Mapping[str, Sequence[int]], interval_ms: int, down: Sequence[Window]
) -> SnapshotGaps:
    """Holes in each symbol's row times (sorted or not) that no daemon-down window explains."""
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be positive, got {interval_ms}")
    lost = excused = rows = 0
    gaps: list[Gap] = []
    for symbol, times in ts_by_symbol.items():
        ordered = sorted(times)
        rows += len(ordered)
        for a, b in itertools.pairwise(ordered):
            step = b - a
            if step <= interval_ms:
                continue
            missing = math.ceil(step / interval_ms) - 1
            if any(start <= b and a <= end for start, end in down):
                excused += missing
            else:
                lost += missing
                gaps.append(Gap(symbol, a, b, missing))
    return SnapshotGaps(rows, lost, excused, tuple(gaps))


@dataclass(frozen=True)
class BookRow:
    """The part of a stored raw snapshot row the book comparison reads."""

    symbol: str
    ts: int
    book_reset: bool
    book_update_id: int | None
    bid_prices: Sequence[float]
    bid_sizes: Sequence[float]
    ask_prices: Sequence[float]
    ask_sizes: Sequence[float]
    n_bid: int
    n_ask: int


@dataclass(frozen=True)
class BookCheck:
    checked: int  # rows compared with the exchange at their update id
    after_resync: int  # of which first rows cut from a freshly loaded snapshot
    mismatches: int
    unverified: int  # rows with levels whose update id the tap has no digest for
    examples: tuple[str, ...] = ()


def row_levels(
    prices: Sequence[float], sizes: Sequence[float], n: int, tick: float, step: float
) -> tuple[tuple[int, int], ...]:
    """A row side's first `n` levels as (ticks, lots)."""
    return tuple((round(prices[i] / tick), round(sizes[i] / step)) for i in range(n))


def book_mismatches(
    rows: Iterable[BookRow],
    digests: Mapping[tuple[str, int], Digest],
    steps: Mapping[str, tuple[float, float]],
) -> BookCheck:
    """Compare each row's book with what the exchange published at the row's update id."""
    checked = after = mismatches = unverified = 0
    examples: list[str] = []
    for row in rows:
        if row.n_bid == 0 and row.n_ask == 0:
            continue  # an invalid book's row: nothing to compare
        expected = None if row.book_update_id is None else digests.get((row.symbol, row.book_update_id))
        if expected is None:
            unverified += 1
            continue
        tick, step = steps[row.symbol]
        bids = row_levels(row.bid_prices, row.bid_sizes, row.n_bid, tick, step)
        asks = row_levels(row.ask_prices, row.ask_sizes, row.n_ask, tick, step)
        checked += 1
        after += row.book_reset
        if book_digest(bids, asks) != expected:
            mismatches += 1
            if len(examples) < 5:
                examples.append(f"{row.symbol} row {row.ts} (u={row.book_update_id}, reset={row.book_reset})")
    return BookCheck(checked, after, mismatches, unverified, tuple(examples))


@dataclass(frozen=True)
class ExchangeOrder:
    order_id: str
    link_id: str
    time_in_force: str
    created_ms: int


@dataclass(frozen=True)
class Duplicates:
    same_link_id: int  # extra exchange orders under one orderLinkId
    extra_attempts: int  # extra attempts at an intent that was not PostOnly
    foreign: int  # orders the daemon's id scheme did not make
    examples: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.same_link_id + self.extra_attempts + self.foreign


def duplicate_orders(orders: Iterable[ExchangeOrder]) -> Duplicates:
    """Duplicates among the exchange's orders of the account (see the module docstring)."""
    by_link: dict[str, set[str]] = collections.defaultdict(set)
    attempts: dict[str, dict[int, set[str]]] = collections.defaultdict(lambda: collections.defaultdict(set))
    foreign: list[str] = []
    for order in orders:
        by_link[order.link_id].add(order.order_id)
        if not is_ours(order.link_id):
            foreign.append(order.link_id or order.order_id)
            continue
        _, intent, attempt = order.link_id.rsplit("-", 2)
        attempts[intent][int(attempt)].add(order.time_in_force)
    same = {link: len(ids) - 1 for link, ids in by_link.items() if len(ids) > 1}
    extra = {
        intent: len(tries) - 1
        for intent, tries in attempts.items()
        if len(tries) > 1 and not all(tifs == {"PostOnly"} for tifs in tries.values())
    }
    examples = [f"orderLinkId {k}: {n + 1} orders" for k, n in same.items()]
    examples += [f"intent {k}: {n + 1} attempts, not PostOnly" for k, n in extra.items()]
    examples += [f"foreign order {k}" for k in foreign]
    return Duplicates(sum(same.values()), sum(extra.values()), len(foreign), tuple(examples[:5]))


def unknown_orders(orders: Iterable[ExchangeOrder], known_link_ids: set[str], cutoff_ms: int) -> list[str]:
    """Exchange orders created before `cutoff_ms` (the last reconciliation) that the database lacks."""
    return sorted(o.link_id for o in orders if o.created_ms < cutoff_ms and o.link_id not in known_link_ids)


def missing_fills(exchange_fills: Mapping[str, int], stored_exec_ids: set[str], cutoff_ms: int) -> list[str]:
    """Executions (exec id → exchange time) before `cutoff_ms` that the `fills` table lacks."""
    return sorted(e for e, ts in exchange_fills.items() if ts < cutoff_ms and e not in stored_exec_ids)


@dataclass(frozen=True)
class AuditLoss:
    transitions_without_audit: int
    fills_without_audit: int
    orders_without_audit: int
    chain_problems: int
    examples: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        return (
            self.transitions_without_audit
            + self.fills_without_audit
            + self.orders_without_audit
            + self.chain_problems
        )


def lost_audit_rows(
    order_events: Iterable[tuple[str, str]],
    audited_statuses: Iterable[tuple[str, str]],
    fill_exec_ids: Iterable[str],
    audited_fills: set[str],
    exchange_link_ids: Iterable[str],
    audited_orders: set[str],
    chain_problems: int,
) -> AuditLoss:
    """Audit rows that should exist and do not.

    `order_events`: (client order id, to_status) per transition row; `audited_statuses`: (client order id,
    new_value status) per audit row of an order; `fill_exec_ids`: the `fills` table; `audited_fills`: exec
    ids with a fill audit row; `exchange_link_ids`: exchange orders the database knows; `audited_orders`:
    client order ids with any audit row.
    """
    events = collections.Counter(order_events)
    audits = collections.Counter(audited_statuses)
    short = {key: n - audits[key] for key, n in events.items() if n > audits[key]}
    fills = [e for e in fill_exec_ids if e not in audited_fills]
    orders = [c for c in exchange_link_ids if c not in audited_orders]
    examples = [f"order {c}: {n} transition(s) to {s} without an audit row" for (c, s), n in short.items()]
    examples += [f"fill {e} without an audit row" for e in fills]
    examples += [f"order {c} without any audit row" for c in orders]
    return AuditLoss(sum(short.values()), len(fills), len(orders), chain_problems, tuple(examples[:5]))
