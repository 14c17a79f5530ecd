"""The fault soak: its measures catch a planted loss or duplicate, its schedule is reproducible, and the
60-second soak itself — the daemon as a real process, the paper exchange, the soak's own PostgreSQL —
ends with every must-be-zero figure at zero after the faults really happened."""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from depthcharge.cli import cli
from depthcharge.soak import SoakConfig, run_soak
from depthcharge.soak.booktap import book_digest
from depthcharge.soak.evidence import BREAKER_OPENED, RESYNC, read_logs
from depthcharge.soak.measures import (
    BookRow,
    ExchangeOrder,
    book_mismatches,
    duplicate_orders,
    lost_audit_rows,
    missing_fills,
    snapshot_gaps,
    unknown_orders,
)
from depthcharge.soak.schedule import DB_RESTART, KILL, KINDS, PROMOTE, plan
from trading_daemon.execution.order_ids import order_link_id

# --- the schedule -----------------------------------------------------------------------------------------


def test_the_schedule_is_reproducible_and_holds_every_fault() -> None:
    assert plan(60, 7) == plan(60, 7)
    assert plan(600, 7) != plan(600, 8)
    for seconds in (60, 600):
        events = plan(seconds, 7)
        assert {e.kind for e in events} == set(KINDS)
        assert [e.at_s for e in events] == sorted(e.at_s for e in events)
        assert all(0 < e.at_s < seconds for e in events)
        assert [e.kind for e in events].count(KILL) == 1 and [e.kind for e in events].count(DB_RESTART) == 1
    rest = sorted((e.at_s, e.at_s + e.duration_s) for e in plan(600, 7) if "error_rate" in e.params)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(rest))


def test_a_too_short_soak_is_refused_naming_the_option() -> None:
    with pytest.raises(ValueError, match="at least 45 seconds"):
        plan(30, 1)
    result = CliRunner().invoke(cli, ["soak", "--seconds", "10"])
    assert result.exit_code == 2 and "--seconds" in result.output
    shown = CliRunner().invoke(cli, ["soak", "--seconds", "60", "--plan-only"])
    assert shown.exit_code == 0 and PROMOTE in shown.output and KILL in shown.output


# --- lost snapshot rows -----------------------------------------------------------------------------------


def test_snapshot_gaps_count_a_planted_hole_and_excuse_only_the_daemon_s_down_time() -> None:
    times = list(range(0, 60_000, 1000))
    assert snapshot_gaps({"BTCUSDT": times}, 1000, []).lost == 0
    holed = [t for t in times if not 10_000 <= t < 13_000]  # three rows lost
    found = snapshot_gaps({"BTCUSDT": holed, "ETHUSDT": times}, 1000, [])
    assert (found.lost, found.excused, found.rows) == (3, 0, 117)
    assert found.gaps[0].symbol == "BTCUSDT" and found.gaps[0].missing == 3
    # The daemon was down from 11.5 s to 14 s: the hole is excused; a window elsewhere excuses nothing.
    assert snapshot_gaps({"BTCUSDT": holed}, 1000, [(11_500, 14_000)]).excused == 3
    assert snapshot_gaps({"BTCUSDT": holed}, 1000, [(30_000, 35_000)]).lost == 3


# --- book mismatches --------------------------------------------------------------------------------------

TICK, STEP = 0.1, 0.001


def _row(
    u: int | None, bids: list[tuple[int, int]], asks: list[tuple[int, int]], *, reset: bool = False
) -> BookRow:
    pad = 50
    return BookRow(
        "BTCUSDT", 1000 * (u or 0), reset, u,
        [p * TICK for p, _ in bids] + [0.0] * (pad - len(bids)), [q * STEP for _, q in bids] + [0.0] * (pad - len(bids)),
        [p * TICK for p, _ in asks] + [0.0] * (pad - len(asks)), [q * STEP for _, q in asks] + [0.0] * (pad - len(asks)),
        len(bids), len(asks),
    )  # fmt: skip


def test_book_mismatches_find_a_planted_difference_at_the_same_update_id() -> None:
    bids, asks = [(650_001, 1500), (650_000, 20)], [(650_002, 7), (650_010, 123_456)]
    digests = {("BTCUSDT", 5): book_digest(tuple(bids), tuple(asks))}
    steps = {"BTCUSDT": (TICK, STEP)}
    same = book_mismatches([_row(5, bids, asks, reset=True)], digests, steps)
    assert (same.checked, same.after_resync, same.mismatches, same.unverified) == (1, 1, 0, 0)
    changed = [(650_001, 1501), (650_000, 20)]  # one lot more at the best bid
    missing_level = [(650_002, 7)]
    invalid = _row(9, [], [])  # an invalid book's row: not compared
    found = book_mismatches(
        [_row(5, changed, asks), _row(5, bids, missing_level), _row(6, bids, asks), invalid], digests, steps
    )
    assert (found.checked, found.mismatches, found.unverified) == (2, 2, 1)


# --- duplicates, unknown orders, missing fills --------------------------------------------------------


def test_duplicate_orders_find_a_planted_duplicate_and_spare_postonly_reprices() -> None:
    def order(oid: str, link: str, tif: str = "GTC") -> ExchangeOrder:
        return ExchangeOrder(oid, link, tif, 1000)

    clean = [
        order("1", order_link_id("scr-1-BTCUSDT")),
        order("2", order_link_id("scr-2-BTCUSDT", 1), "PostOnly"),
        order("3", order_link_id("scr-2-BTCUSDT", 2), "PostOnly"),  # a re-priced PostOnly: a new attempt
    ]
    assert duplicate_orders(clean).total == 0
    planted = [
        *clean,
        order("4", order_link_id("scr-1-BTCUSDT")),  # the same orderLinkId accepted twice
        order("5", order_link_id("scr-3-BTCUSDT", 1), "IOC"),
        order("6", order_link_id("scr-3-BTCUSDT", 2), "IOC"),  # a second attempt at a market intent
        order("7", "manual-order"),  # not made by the daemon
    ]
    found = duplicate_orders(planted)
    assert (found.same_link_id, found.extra_attempts, found.foreign, found.total) == (1, 1, 1, 3)


def test_unknown_orders_and_missing_fills_before_the_last_reconciliation() -> None:
    orders = [ExchangeOrder("1", "a-1", "GTC", 1_000), ExchangeOrder("2", "b-1", "GTC", 9_000)]
    assert unknown_orders(orders, {"a-1"}, cutoff_ms=5_000) == []  # b-1 came after the last pass
    assert unknown_orders(orders, set(), cutoff_ms=5_000) == ["a-1"]
    assert missing_fills({"e1": 1_000, "e2": 9_000}, {"e1"}, 5_000) == []
    assert missing_fills({"e1": 1_000, "e2": 2_000}, {"e1"}, 5_000) == ["e2"]


# --- lost audit rows --------------------------------------------------------------------------------------


def test_lost_audit_rows_find_a_transition_a_fill_and_an_order_without_their_rows() -> None:
    events = [("a", "Pending"), ("a", "Placed"), ("a", "Filled"), ("b", "Pending")]
    audits = [("a", "Pending"), ("a", "Placed"), ("a", "Filled"), ("b", "Pending")]
    whole = lost_audit_rows(events, audits, ["e1"], {"e1"}, ["a", "b"], {"a", "b"}, 0)
    assert whole.total == 0
    planted = lost_audit_rows(
        events, audits[:2] + audits[3:], ["e1", "e2"], {"e1"}, ["a", "c"], {"a", "b"}, 1
    )
    assert (
        planted.transitions_without_audit,
        planted.fills_without_audit,
        planted.orders_without_audit,
        planted.chain_problems,
        planted.total,
    ) == (1, 1, 1, 1, 4)


def test_read_logs_counts_events_across_files_and_skips_a_line_cut_by_sigkill(tmp_path: Path) -> None:
    line = lambda event, level="warning": json.dumps({"event": event, "level": level, "logger": "x"})  # noqa: E731
    (tmp_path / "bot_20260101.log").write_text(
        "\n".join([line(RESYNC), line(RESYNC), line(BREAKER_OPENED)]) + "\n"
    )
    (tmp_path / "bot_20260102.log").write_text(
        line(RESYNC) + "\n" + line("boom", "error") + '\n{"event": "cut'
    )
    (tmp_path / "bot_errors_20260102.log").write_text(line("boom", "error") + "\n")  # the same lines again
    found = read_logs(tmp_path)
    assert (found.count(RESYNC), found.count(BREAKER_OPENED), found.count("boom")) == (3, 1, 1)
    assert found.errors == ["boom (x)"]


# --- the 60-second soak ----------------------------------------------------------------------------------


@pytest.mark.slow(seconds=75)
@pytest.mark.timeout(240)
async def test_the_60_second_soak_survives_its_faults_with_every_must_be_zero_figure_at_zero(
    tmp_path: Path,
) -> None:
    # A short data directory: the server's Unix socket lives in it.
    pgdata = Path(tempfile.mkdtemp(prefix="dc-soak-"))
    try:
        summary = await run_soak(
            SoakConfig(seconds=60, seed=7, pgdata=pgdata / "pg", runs_dir=tmp_path), echo=lambda _: None
        )
    finally:
        shutil.rmtree(pgdata, ignore_errors=True)
    report = summary.render()
    print(report)
    assert summary.failures() == [], report
    # The faults happened, and the daemon came through each.
    assert summary.resyncs > 0 and summary.ws_reconnects > 0, report
    assert summary.sigkills == 1 and summary.incarnations == 3 and summary.restarts_ready == 2, report
    assert summary.db_restarts == 1, report
    assert sum(summary.rest_faults.values()) > 0, report
    assert summary.swapped and summary.swap_latency_ms is not None, report
    # Trading happened, and the figures had something to measure.
    assert summary.orders > 0 and summary.fills > 0 and summary.exchange_orders > 0, report
    assert summary.book.checked > 100 and summary.book.after_resync > 0, report
    assert summary.snapshots.rows > 100 and summary.audit_rows > 0, report
