"""The position state machine: its table, fill arithmetic, and random fill sequences with duplicated and
reordered executions (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.enums import PositionStatus, Side
from trading_daemon.execution.order_fsm import InvalidTransition
from trading_daemon.execution.position_fsm import POSITION_TRANSITIONS, PositionStateMachine

P = PositionStatus


def test_the_table_has_four_states_and_closed_is_final() -> None:
    assert set(POSITION_TRANSITIONS) == set(PositionStatus)
    assert POSITION_TRANSITIONS[P.CLOSED] == frozenset()
    assert P.OPENING not in set().union(*POSITION_TRANSITIONS.values())


def test_entry_fills_average_the_price_and_an_exit_closes_with_pnl() -> None:
    fsm = PositionStateMachine(1, Side.BUY)
    fsm.apply_fill("e1", Side.BUY, Decimal(1), Decimal(100), ts=1)
    fsm.apply_fill("e2", Side.BUY, Decimal(3), Decimal(104), ts=2)
    assert fsm.status is P.OPEN and fsm.size == 4 and fsm.entry_price == Decimal(103)
    fsm.transition_to(P.CLOSING, ts=3, reason="exit written")
    out = fsm.apply_fill("x1", Side.SELL, Decimal(1), Decimal(110), ts=4)
    assert out.realized_pnl == Decimal(7) and fsm.status is P.CLOSING and fsm.size == 3
    out = fsm.apply_fill("x2", Side.SELL, Decimal(5), Decimal(90), ts=5)
    assert out.closed_quantity == 3 and out.remainder == 2 and out.realized_pnl == Decimal(-39)
    assert fsm.status is P.CLOSED and fsm.size == 0
    with pytest.raises(InvalidTransition, match="closed"):
        fsm.apply_fill("x3", Side.SELL, Decimal(1), Decimal(90), ts=6)


def test_a_duplicated_execution_changes_nothing() -> None:
    fsm = PositionStateMachine(1, Side.SELL)
    assert fsm.apply_fill("e1", Side.SELL, Decimal(2), Decimal(50), ts=1).applied
    again = fsm.apply_fill("e1", Side.SELL, Decimal(2), Decimal(50), ts=1)
    assert not again.applied and fsm.size == 2 and len(fsm.history) == 1


def test_daemon_decisions_follow_the_table() -> None:
    fsm = PositionStateMachine(1, Side.BUY)
    with pytest.raises(InvalidTransition, match="size is zero"):
        fsm.transition_to(P.OPEN, ts=1, reason="no fill yet")
    fsm.transition_to(P.CLOSED, ts=1, reason="entry ended unfilled")  # Opening -> Closed
    fresh = PositionStateMachine(2, Side.BUY)
    fresh.apply_fill("e", Side.BUY, Decimal(1), Decimal(10), ts=1)
    with pytest.raises(InvalidTransition, match="not zero"):
        fresh.transition_to(P.CLOSED, ts=2, reason="still has size")
    fresh.transition_to(P.CLOSING, ts=2, reason="exit")
    fresh.transition_to(P.OPEN, ts=3, reason="exit cancelled")  # Closing -> Open


@st.composite
def fills(draw: st.DrawFn) -> list[tuple[str, Side, Decimal]]:
    n = draw(st.integers(1, 12))
    return [
        (f"x{i}", draw(st.sampled_from([Side.BUY, Side.SELL])), Decimal(draw(st.integers(1, 9))))
        for i in range(n)
    ]


def _replay(sequence: list[tuple[str, Side, Decimal]]) -> list[PositionStateMachine]:
    """Feed fills the way the ledger does: one live position per symbol, a reversal opens the next."""
    chain: list[PositionStateMachine] = []
    seen: set[str] = set()  # the fills table's unique execId
    for exec_id, side, qty in sequence:
        if exec_id in seen:
            continue
        seen.add(exec_id)
        live = chain[-1] if chain and not chain[-1].is_closed else None
        if live is None:
            live = PositionStateMachine(len(chain), side)
            chain.append(live)
        out = live.apply_fill(exec_id, side, qty, Decimal(100), ts=0)
        if out.remainder:
            nxt = PositionStateMachine(len(chain), side)
            nxt.apply_fill(exec_id, side, out.remainder, Decimal(100), ts=0)
            chain.append(nxt)
    return chain


@given(data=st.data(), sequence=fills())
@settings(max_examples=300, deadline=None)
def test_any_order_with_repeats_ends_at_the_net_position(
    data: st.DataObject, sequence: list[tuple[str, Side, Decimal]]
) -> None:
    delivered = data.draw(
        st.permutations(sequence + data.draw(st.lists(st.sampled_from(sequence), max_size=6)))
    )
    chain = _replay(delivered)
    net = sum(q * s.sign for _, s, q in sequence)
    live = [p for p in chain if not p.is_closed]
    assert len(live) <= 1  # one-way mode: at most one live position
    if net == 0:
        assert not live
    else:
        assert live[0].size == abs(net) and live[0].side.sign * net > 0
    for position in chain:
        for step in position.history:
            assert step.to_status in POSITION_TRANSITIONS[step.from_status]
        if position.is_closed:
            assert position.size == 0
    # What was applied is exactly the distinct executions.
    assert set().union(*(p.applied_exec_ids for p in chain)) == {e for e, _, _ in sequence}
