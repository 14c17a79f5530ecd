"""Protection that survives the daemon: an entry's take-profit and stop-loss go on the exchange with the
order, so when the daemon is dead and the price falls through the stop, the exchange closes the position;
the next start imports what happened."""

from __future__ import annotations

from decimal import Decimal

from exchange_sim.server.app import SimServer
from infra.db.connection import Database
from infra.db.repositories import OrderRepository, PositionRepository
from schemas.enums import OrderStatus, OrderType, PositionStatus, Side
from tests.trading_daemon.execution.conftest import make_rest, make_runtime, market_intent, wait_until


async def test_the_stop_loss_on_the_exchange_closes_the_position_while_the_daemon_is_down(
    venue: SimServer, db: Database, pool
) -> None:
    rest = make_rest(venue)
    rt = make_runtime(venue, db, pool, rest)
    await rt.open()
    book = venue.venue.engine.books["BTCUSDT"]
    ask = book.instrument.ticks_to_price(book.best_ask() or 0)
    intent = market_intent("protected", take_profit=ask + 500, stop_loss=ask - Decimal("0.5"))
    result = await rt.manager.submit(intent)
    orders = OrderRepository(pool)

    async def filled() -> bool:
        order = await orders.get_by_client_order_id(result.client_order_id or "")
        return order is not None and order.status is OrderStatus.FILLED

    await wait_until(filled, what="entry filled")
    on_exchange = [p for p in await rest.get_positions() if p.size > 0]
    assert (
        on_exchange
        and on_exchange[0].stop_loss == ask - Decimal("0.5")
        and on_exchange[0].take_profit == ask + 500
    )
    await rt.close()  # the daemon is gone; the stop-loss is not

    other = make_rest(venue, api_key="XkTestApiKey0002", api_secret="AnotherSecretNotReal0123456789abcdef")
    try:

        async def stopped_out() -> bool:
            return not [p for p in await rest.get_positions() if p.size > 0]

        # Another account sells through the bids: the last price falls below the stop.
        await other.place_order(
            symbol="BTCUSDT", side=Side.SELL, order_type=OrderType.MARKET, qty=Decimal("0.1")
        )
        await wait_until(stopped_out, within=10, what="the exchange's stop-loss closed the position")
    finally:
        await other.close()

    again = make_runtime(venue, db, pool, rest)
    await again.open()
    try:
        report = again.first_reconciliation
        assert report is not None and report.success and report.fills_imported >= 1
        position = (await PositionRepository(pool).find(symbol="BTCUSDT"))[0]
        assert position.status is PositionStatus.CLOSED and position.quantity == 0
        assert position.exit_reason == "StopLoss triggered on the exchange (found by reconciliation)"
    finally:
        await again.close()
        await rest.close()
