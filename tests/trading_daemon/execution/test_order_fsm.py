"""The order state machine: its table, the original spec's scenario 1 and example 2, and random exchange
report sequences delivered out of order and repeated (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.enums import OrderStatus
from trading_daemon.execution.order_fsm import (
    ORDER_TRANSITIONS,
    InvalidTransition,
    OrderReport,
    OrderStateMachine,
    Verdict,
)

S = OrderStatus


def test_the_table_covers_the_seven_states_and_terminal_states_have_no_exit() -> None:
    assert set(ORDER_TRANSITIONS) == set(OrderStatus)
    for status, targets in ORDER_TRANSITIONS.items():
        assert (not targets) == status.is_terminal, status
    assert S.FAILED in ORDER_TRANSITIONS[S.PENDING] and not any(
        S.FAILED in ORDER_TRANSITIONS[s] for s in OrderStatus if s is not S.PENDING
    )


def test_scenario_1_valid_transition_invalid_blocked_history_kept() -> None:
    fsm = OrderStateMachine("my_order", S.PENDING, Decimal(1))
    assert fsm.can_transition_to(S.PLACED)
    fsm.transition_to(S.PLACED, ts=1, reason="acknowledged")
    assert fsm.status is S.PLACED
    with pytest.raises(InvalidTransition, match="no transition Placed -> Failed"):
        fsm.transition_to(S.FAILED, ts=2, reason="nope")
    fsm.transition_to(S.FILLED, ts=3, reason="filled", filled_quantity=Decimal(1))
    with pytest.raises(InvalidTransition, match="Filled -> Cancelled"):
        fsm.transition_to(S.CANCELLED, ts=4, reason="cancel a filled order")
    assert fsm.get_transition_history() == [
        {"from": "Pending", "to": "Placed", "timestamp": 1, "reason": "acknowledged"},
        {"from": "Placed", "to": "Filled", "timestamp": 3, "reason": "filled"},
    ]


def test_a_partial_fill_must_add_quantity_and_never_exceed_the_order() -> None:
    fsm = OrderStateMachine("o", S.PLACED, Decimal(2))
    assert fsm.apply(OrderReport(S.PARTIALLY_FILLED, Decimal("0.5"))) is not None
    with pytest.raises(InvalidTransition, match="exceeds the order quantity"):
        fsm.classify(OrderReport(S.FILLED, Decimal(3)))
    assert fsm.classify(OrderReport(S.PARTIALLY_FILLED, Decimal("0.5"))) is Verdict.DUPLICATE
    assert fsm.classify(OrderReport(S.PLACED, Decimal(0))) is Verdict.STALE


def test_two_filled_messages_for_a_cancel_racing_a_fill_are_absorbed() -> None:
    """Bybit documents a second Filled (cancelType CancelByUser) when a cancel races a fill (§6.4)."""
    fsm = OrderStateMachine("o", S.PLACED, Decimal(1))
    fsm.apply(OrderReport(S.FILLED, Decimal(1)))
    assert fsm.apply(OrderReport(S.FILLED, Decimal(1))) is None
    assert fsm.classify(OrderReport(S.CANCELLED, Decimal(1))) is Verdict.CONFLICT
    assert fsm.status is S.FILLED and len(fsm.history) == 1


def test_correction_forces_the_exchange_state_and_is_marked() -> None:
    fsm = OrderStateMachine("o", S.CANCELLED, Decimal(1))
    step = fsm.correct(S.PLACED, ts=5, reason="reconciliation", filled_quantity=Decimal(0))
    assert step.correction and fsm.status is S.PLACED


# --- random lifecycles ---------------------------------------------------------------------------------


@st.composite
def lifecycles(draw: st.DrawFn) -> tuple[Decimal, list[OrderReport]]:
    """A true lifecycle of exchange reports: Placed?, partial fills, an end (Filled/Cancelled/Rejected)."""
    lots = draw(st.integers(1, 20))
    qty = Decimal(lots) / 10
    end = draw(st.sampled_from([S.FILLED, S.CANCELLED, S.REJECTED]))
    reports: list[OrderReport] = []
    if draw(st.booleans()) or end is S.REJECTED:
        reports.append(OrderReport(S.PLACED, Decimal(0), ts=1))
    if end is S.REJECTED:
        return qty, [*reports, OrderReport(S.REJECTED, Decimal(0), ts=2)]
    cut = lots if end is S.FILLED else draw(st.integers(0, lots))
    points = sorted(set(draw(st.lists(st.integers(1, max(cut - 1, 1)), max_size=5)))) if cut > 1 else []
    for i, p in enumerate(p for p in points if p < cut):
        reports.append(OrderReport(S.PARTIALLY_FILLED, Decimal(p) / 10, ts=10 + i))
    reports.append(OrderReport(end, Decimal(cut) / 10, ts=100))
    return qty, reports


@given(data=st.data(), life=lifecycles())
@settings(max_examples=300, deadline=None)
def test_out_of_order_and_repeated_reports_converge_on_the_true_end(
    data: st.DataObject, life: tuple[Decimal, list[OrderReport]]
) -> None:
    qty, truth = life
    delivered = data.draw(st.permutations(truth + data.draw(st.lists(st.sampled_from(truth), max_size=8))))
    fsm = OrderStateMachine("o", S.PENDING, qty)
    for report in delivered:
        fsm.apply(report)  # never raises: late and repeated reports are ignored
    assert fsm.status is truth[-1].status
    assert fsm.filled_quantity == truth[-1].filled_quantity
    # Every step was an edge of the table and moved the order forward.
    for step in fsm.history:
        assert step.to_status in ORDER_TRANSITIONS[step.from_status]
    fills = [s.filled_quantity for s in fsm.history]
    assert fills == sorted(fills)
    # Delivering everything again changes nothing.
    before = list(fsm.history)
    for report in delivered:
        assert fsm.apply(report) is None
    assert fsm.history == before


@given(life=lifecycles())
@settings(max_examples=100, deadline=None)
def test_in_order_delivery_applies_every_report(life: tuple[Decimal, list[OrderReport]]) -> None:
    qty, truth = life
    fsm = OrderStateMachine("o", S.PENDING, qty)
    applied = [fsm.apply(r) for r in truth]
    assert all(a is not None for a in applied)
    assert [s.to_status for s in fsm.history] == [r.status for r in truth]


@given(status=st.sampled_from(list(OrderStatus)), target=st.sampled_from(list(OrderStatus)))
def test_commands_follow_the_table_exactly(status: OrderStatus, target: OrderStatus) -> None:
    fsm = OrderStateMachine(
        "o", status, Decimal(10), Decimal(1) if status is S.PARTIALLY_FILLED else Decimal(0)
    )
    filled = fsm.filled_quantity + (1 if target is S.PARTIALLY_FILLED else 0)
    if target in ORDER_TRANSITIONS[status]:
        fsm.transition_to(target, ts=1, reason="t", filled_quantity=filled)
        assert fsm.status is target
    else:
        with pytest.raises(InvalidTransition):
            fsm.transition_to(target, ts=1, reason="t", filled_quantity=filled)
        assert fsm.status is status
