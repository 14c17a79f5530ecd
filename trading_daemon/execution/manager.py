"""The execution manager: a `TradeIntent` becomes at most one order per attempt, whatever fails.

    submit(intent) ─▶ idempotency (same intent within the TTL → same result, no second call)
                   ─▶ refuse entries while halted (kill switch) or not reconciled (exits pass)
                   ─▶ pre-trade checks (instrument rules first, then risk …), each refusal audited
                   ─▶ write the order Pending, its position's side and the audit row (one transaction)
                   ─▶ mark it sent, then ONE create request (rate-limited, circuit-broken)
                         ack ─────────────▶ Placed (unless the stream already moved it further)
                         refused ─────────▶ Rejected
                         outcome unknown ─▶ settle(): the ambiguous-outcome rule below

**The ambiguous-outcome rule.** A create that timed out, got a 5xx or lost its connection may or may not
have reached the exchange. It is never sent again until the exchange has confirmed by `orderLinkId` that it
does not have the order, and that answer only counts once the request's recv window has passed (plus
RECV_WINDOW_MARGIN_MS of clock uncertainty): until then a delayed copy could still be accepted. A failed
lookup is an error, never "absent". Confirmed absent, the order is resent with the same orderLinkId while
its intent is younger than INTENT_RESEND_MAX_AGE_S, else marked Failed. Any stream or REST report of the
order settles it at once. While an outcome is unsettled the account is not reconciled: no new entries.

PostOnly orders that would cross, or rest unfilled for POST_ONLY_TIMEOUT_S, are cancelled and re-priced at
the touch as the intent's next attempt (a new orderLinkId), at most POST_ONLY_MAX_REPRICES times.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import msgspec
import structlog

from infra.settings import ExecutionConfig
from schemas.enums import AuditAction, OrderStatus, OrderType, Side, TimeInForce
from schemas.trading import Order, TradeIntent
from trading_daemon.errors import Backoff, Kind, classify
from trading_daemon.exchange.errors import BybitDuplicateOrderLinkId, BybitOrderNotFound
from trading_daemon.exchange.records import BybitOrderFilter, BybitOrderReport, BybitOrderStatus
from trading_daemon.exchange.rest import BybitRestClient
from trading_daemon.execution.audit import to_json
from trading_daemon.execution.contracts import CheckVerdict, PreTradeCheck, SubmitResult
from trading_daemon.execution.crashpoints import crash_point
from trading_daemon.execution.idempotency import IdempotencyService, InProgress, KeyReused
from trading_daemon.execution.ledger import Ledger
from trading_daemon.execution.market_view import MarketView
from trading_daemon.execution.order_ids import order_link_id
from trading_daemon.observability.trace import trace_operation

log = structlog.get_logger(__name__)

POST_ONLY_CROSSED = "EC_PostOnlyWillTakeLiquidity"
_ORDER_FIELDS = frozenset(
    {"intent_id", "symbol", "side", "order_type", "quantity", "notional", "price", "time_in_force",
     "reduce_only", "take_profit", "stop_loss"}
)  # fmt: skip
_SEND_ATTEMPTS = 4  # refusals before processing (open breaker, never connected) are retried this often


@dataclass
class ManagerStats:
    submitted: int = 0
    repeats: int = 0
    refused: int = 0
    sent: int = 0
    unknown_outcomes: int = 0
    found_after_unknown: int = 0
    confirmed_absent: int = 0
    resent: int = 0
    failed: int = 0
    reprices: int = 0


@dataclass(frozen=True, slots=True)
class _Sent:
    """What one send did: the order's status, and when it is unknown, from when a lookup counts."""

    status: OrderStatus
    not_before_ms: int | None = None
    error: str = ""


class _Refused(Exception):
    """An intent refused for a passing reason (halted, not reconciled): answered, not cached."""

    def __init__(self, result: SubmitResult) -> None:
        self.result = result
        super().__init__(result.reason)


class ExecutionManager:
    """Implements `contracts.IntentSubmitter`; also amend, cancel, cancel-all and close-position."""

    def __init__(
        self,
        rest: BybitRestClient,
        ledger: Ledger,
        idempotency: IdempotencyService,
        config: ExecutionConfig,
        *,
        checks: Sequence[PreTradeCheck] = (),
        market: MarketView | None = None,
        process_start_ms: int | None = None,
    ) -> None:
        self.rest = rest
        self.ledger = ledger
        self.account = ledger.account
        self.idempotency = idempotency
        self.config = config
        self.checks = list(checks)
        self.market = market
        self.halt_reason: str | None = None  # set by the kill switch: entries refused
        self._timed_out: set[str] = set()  # PostOnly orders our own timer cancelled, to re-price them
        self.paused_reason: str | None = (
            None  # set by an operator's bot stop (execution.pause): entries refused
        )
        self.stats = ManagerStats()
        self.process_start_ms = process_start_ms if process_start_ms is not None else rest.http.now_ms()
        self.intents: dict[str, TradeIntent] = {}  # intent id → the sized intent, for re-pricing
        self.settling: dict[str, asyncio.Task[str]] = {}  # orderLinkId → its unknown outcome being settled
        self.inflight: set[str] = (
            set()
        )  # orderLinkIds written and not yet answered: reconciliation skips them
        self._submitting: set[str] = set()
        self._timers: dict[str, asyncio.Task[None]] = {}
        ledger.on_order_end.append(self._on_order_end)

    # --- IntentSubmitter ----------------------------------------------------------------------------

    @property
    def entries_blocked(self) -> bool:
        """The kill switch or an operator's stop: no new entry order, no resend or reprice of one."""
        return self.halt_reason is not None or self.paused_reason is not None

    async def submit(self, intent: TradeIntent) -> SubmitResult:
        """Turn `intent` into an order (see the module docstring); the same intent twice is one order."""
        async with trace_operation("submit_intent", trace_id=intent.trace_id, intent=intent.intent_id,
                                   symbol=intent.symbol, side=str(intent.side)) as op:  # fmt: skip
            if intent.trace_id is None:
                intent = msgspec.structs.replace(intent, trace_id=op.trace_id)
            key = f"submit:{intent.intent_id}"
            # What makes it this order; the time, trace and context of a resubmission may differ.
            params = {
                k: v for k, v in msgspec.to_builtins(intent, builtin_types=None).items() if k in _ORDER_FIELDS
            }
            self.stats.submitted += 1
            self._submitting.add(intent.intent_id)
            try:
                outcome = await self.idempotency.run("submit", key, params, lambda: self._submit_new(intent))
            except _Refused as refused:
                return refused.result
            except KeyReused as exc:
                return SubmitResult(intent.intent_id, False, reason=str(exc))
            except InProgress:
                return await self._in_progress(intent)
            finally:
                self._submitting.discard(intent.intent_id)
            if outcome.cached:
                self.stats.repeats += 1
            return _result(outcome.result)

    async def _in_progress(self, intent: TradeIntent) -> SubmitResult:
        """The intent's claim is held: by a call still running here, or by a process that died."""
        orders = await self.ledger.orders.get_by_intent(intent.intent_id)
        if orders:
            last = orders[-1]
            return SubmitResult(
                intent.intent_id, True, last.client_order_id, last.status, "already submitted"
            )
        if intent.intent_id in self._submitting:
            return SubmitResult(intent.intent_id, False, reason="this intent is being submitted right now")
        # The claim's owner died before writing an order: nothing was sent (the order row comes first).
        await self.idempotency.repo.release(f"submit:{intent.intent_id}")
        return await self.submit(intent)

    async def _submit_new(self, intent: TradeIntent) -> dict[str, Any]:
        existing = await self.ledger.orders.get_by_intent(intent.intent_id)
        if existing:  # submitted before the idempotency key expired or was written: still one order
            last = existing[-1]
            return asdict(
                SubmitResult(intent.intent_id, True, last.client_order_id, last.status, "already submitted")
            )
        if not intent.reduce_only:
            if self.halt_reason is not None:
                raise _Refused(
                    await self._refuse(intent, "kill_switch", f"trading halted: {self.halt_reason}")
                )
            if self.paused_reason is not None:
                raise _Refused(
                    await self._refuse(intent, "bot_stopped", f"bot stopped: {self.paused_reason}")
                )
            if not self.account.reconciled():
                why = self.account.why_not_reconciled()
                raise _Refused(await self._refuse(intent, "reconciliation", f"not reconciled: {why}"))
        checked = intent
        verdicts: list[dict[str, Any]] = []
        for check in self.checks:
            verdict: CheckVerdict = await check.check(checked, self.account)
            verdicts.append({"check": verdict.check, "approved": verdict.approved, "reason": verdict.reason,
                             "details": to_json(verdict.details)})  # fmt: skip
            if not verdict.approved:
                return asdict(
                    await self._refuse(checked, verdict.check, verdict.reason or "refused", verdicts)
                )
            checked = verdict.intent
        if checked.quantity is None:
            return asdict(
                await self._refuse(checked, "instrument", "no check sized the intent (notional given)")
            )
        self.intents[checked.intent_id] = checked
        order = await self._write(checked, attempt=1, verdicts=verdicts)
        crash_point("after_intent_write")
        status = await self._send_and_settle(order, checked)
        return asdict(SubmitResult(intent.intent_id, True, order.client_order_id, status))

    async def _refuse(
        self, intent: TradeIntent, check: str, reason: str, verdicts: list[dict[str, Any]] | None = None
    ) -> SubmitResult:
        self.stats.refused += 1
        await self.ledger.auditor.record(
            AuditAction.RISK_REJECT, "TradeIntent", intent.intent_id, reason=f"{check}: {reason}",
            new={"intent": to_json(intent)}, context={"signal": intent.context, "checks": verdicts or []},
            symbol=intent.symbol, success=False, trace_id=intent.trace_id, actor=intent.source,
        )  # fmt: skip
        log.info("intent refused", intent=intent.intent_id, check=check, reason=reason)
        return SubmitResult(intent.intent_id, False, reason=f"{check}: {reason}")

    async def _write(self, intent: TradeIntent, *, attempt: int, verdicts: list[dict[str, Any]] | None = None,
                     price: Decimal | None = None, quantity: Decimal | None = None) -> Order:  # fmt: skip
        coid = order_link_id(intent.intent_id, attempt)
        signal = {"intent_id": intent.intent_id, "source": intent.source, "signal_id": intent.signal_id,
                  "context": intent.context}  # fmt: skip
        order = Order(
            client_order_id=coid,
            symbol=intent.symbol,
            side=intent.side,
            order_type=intent.order_type,
            quantity=quantity if quantity is not None else intent.quantity,  # type: ignore[arg-type]
            price=price if price is not None else intent.price,
            time_in_force=intent.time_in_force,
            reduce_only=intent.reduce_only,
            take_profit=intent.take_profit,
            stop_loss=intent.stop_loss,
            reason=intent.reason or f"{intent.source} intent",
            signal_data=to_json(signal),
            trace_id=intent.trace_id,
            intent_id=intent.intent_id,
            attempt=attempt,
        )
        self.inflight.add(coid)
        try:
            return await self.ledger.create_order(
                order, reason=order.reason or "intent",
                context={"signal": intent.context, "checks": verdicts or [], "intent_ts": intent.ts},
            )  # fmt: skip
        except BaseException:
            self.inflight.discard(coid)
            raise

    # --- sending ------------------------------------------------------------------------------------

    async def _send_and_settle(self, order: Order, intent: TradeIntent | None) -> OrderStatus:
        """Send `order`; an unknown outcome is settled in the background (the order stays Pending)."""
        coid = order.client_order_id
        self.inflight.add(coid)
        try:
            sent = await self._send(order)
        except BaseException:
            # A write of ours failed (the database is down): the order stays Pending for reconciliation.
            self.inflight.discard(coid)
            raise
        if sent.not_before_ms is None:
            self.inflight.discard(coid)
            return sent.status
        self._start_settling(order, intent, sent.not_before_ms, sent.error)
        return OrderStatus.PENDING

    async def _send(self, order: Order) -> _Sent:
        """One create request for `order` (already written Pending) and what became of it."""
        coid = order.client_order_id
        backoff = Backoff(0.2, 2.0)
        for attempt in range(_SEND_ATTEMPTS):
            await self.ledger.mark_sent(coid, self.rest.http.now_ms())
            crash_point("before_send")
            self.stats.sent += 1
            try:
                ack = await self.rest.place_order(
                    symbol=order.symbol, side=order.side, order_type=order.order_type, qty=order.quantity,
                    price=order.price, time_in_force=_tif(order), order_link_id=coid,
                    reduce_only=order.reduce_only or None, take_profit=order.take_profit,
                    stop_loss=order.stop_loss, resend_after_unknown=False,
                )  # fmt: skip
            except BybitDuplicateOrderLinkId:
                # The exchange has this orderLinkId already: an earlier request got through. Look it up now.
                return _Sent(OrderStatus.PENDING, self.rest.http.now_ms(), "exchange: duplicate orderLinkId")
            except Exception as exc:
                decision = classify(exc, now_ms=self.rest.http.now_ms())
                if decision.kind is Kind.REJECT:
                    await self.ledger.command(
                        coid, OrderStatus.REJECTED, reason=f"refused by the exchange: {exc}", error=str(exc),
                        success=False,
                    )  # fmt: skip
                    return _Sent(OrderStatus.REJECTED)
                if (
                    decision.kind is Kind.RETRY
                    and not decision.outcome_unknown
                    and attempt + 1 < _SEND_ATTEMPTS
                ):
                    # Refused before processing (open breaker, never connected): nothing reached the venue.
                    await asyncio.sleep(decision.wait_s(backoff.delay(attempt)))
                    continue
                if decision.kind is Kind.RETRY and not decision.outcome_unknown:
                    # Every attempt was refused before it reached the venue: nothing to wait out.
                    return _Sent(OrderStatus.PENDING, self.rest.http.now_ms(), f"not sent: {exc}")
                self.stats.unknown_outcomes += 1
                # From the signing time of the request that may be out there (the client's, else now).
                signed_ms = getattr(exc, "request_ms", None) or self.rest.http.now_ms()
                not_before = signed_ms + self._recv_window_ms()
                log.warning("order outcome unknown: settling by orderLinkId", order=coid, error=str(exc),
                            kind=decision.kind.value, not_before_ms=not_before)  # fmt: skip
                return _Sent(OrderStatus.PENDING, not_before, f"{type(exc).__name__}: {exc}")
            crash_point("after_submit_before_ack")
            await self._ack(order, ack.order_id)
            return _Sent((await self.ledger.get(coid) or order).status)
        raise AssertionError("unreachable")

    async def _ack(self, order: Order, exchange_order_id: str) -> None:
        """The create reply: Placed, unless a stream report already moved the order further."""
        report = BybitOrderReport(
            order_id=exchange_order_id, order_link_id=order.client_order_id, symbol=order.symbol, side=order.side,
            order_type=order.order_type, time_in_force=order.time_in_force, status=BybitOrderStatus.NEW,
            price=order.price, quantity=order.quantity, filled_quantity=Decimal(0), leaves_quantity=order.quantity,
            avg_fill_price=None, cum_fee=Decimal(0), reduce_only=order.reduce_only, reject_reason="",
            cancel_type="", created_ms=0, updated_ms=self.rest.http.now_ms(),
        )  # fmt: skip
        await self.ledger.apply_report(report, source="ack")
        if order.time_in_force is TimeInForce.POST_ONLY and order.intent_id is not None:
            self._arm_post_only_timer(order)

    def _recv_window_ms(self) -> int:
        return self.rest.http.recv_window_ms + self.config.recv_window_margin_ms

    # --- the ambiguous-outcome rule -----------------------------------------------------------------

    def _start_settling(self, order: Order, intent: TradeIntent | None, not_before_ms: int, why: str) -> None:
        coid = order.client_order_id
        self.account.hold(f"unknown:{coid}", f"outcome of order {coid} unknown ({why})")
        task = asyncio.get_running_loop().create_task(
            self.settle(order, intent, not_before_ms), name=f"settle {coid}"
        )
        self.settling[coid] = task

        def done(t: asyncio.Task[str]) -> None:
            if self.settling.get(coid) is t:
                del self.settling[coid]
            self.inflight.discard(coid)
            self.account.release(f"unknown:{coid}")
            if not t.cancelled() and t.exception() is not None:
                log.error("settling an unknown outcome failed", order=coid, error=repr(t.exception()))

        task.add_done_callback(done)

    async def settle(self, order: Order, intent: TradeIntent | None, not_before_ms: int) -> str:
        """Find out whether the exchange has `order` (see the module docstring); returns what it decided:
        "known" (reported by the exchange), "resent" or "failed" (confirmed absent)."""
        coid = order.client_order_id
        backoff = Backoff(0.25, 5.0)
        failures = 0
        while True:  # until the exchange has reported the order, or confirmed it does not have it
            try:
                current = await self.ledger.get(coid)
            except Exception as exc:  # the database: wait for it, the order is not going anywhere
                failures += 1
                log.warning("settling: database read failed", order=coid, error=str(exc))
                await asyncio.sleep(classify(exc).wait_s(backoff.delay(failures)))
                continue
            if current is not None and current.status is not OrderStatus.PENDING:
                self.stats.found_after_unknown += 1
                return "known"  # a report settled it meanwhile
            wait_ms = not_before_ms - self.rest.http.now_ms()
            if wait_ms > 0:
                await asyncio.sleep(min(wait_ms / 1000, 0.25))
                continue
            try:
                found = await self.rest.find_order(order.symbol, order_link_id=coid)
            except Exception as exc:  # a failed lookup is an error, never "absent"
                failures += 1
                wait_s = classify(exc).wait_s(backoff.delay(failures))
                log.warning(
                    "lookup of an unknown order failed; retrying",
                    order=coid,
                    error=str(exc),
                    retry_in_s=wait_s,
                )
                await asyncio.sleep(wait_s)
                continue
            if found is not None:
                self.stats.found_after_unknown += 1
                await self.ledger.apply_report(found, source="lookup")
                if found.time_in_force is TimeInForce.POST_ONLY and found.order_status is OrderStatus.PLACED:
                    self._arm_post_only_timer(order)
                return "known"
            resend = await self._confirmed_absent(order, intent)
            if resend is None:
                return "failed"
            sent = await self._send(order)
            if sent.not_before_ms is None:
                return "resent"
            not_before_ms = sent.not_before_ms  # unknown again: the same rule from the top

    async def _confirmed_absent(self, order: Order, intent: TradeIntent | None) -> bool | None:
        """The exchange has confirmed it does not have `order`: True to resend it, None when marked Failed."""
        self.stats.confirmed_absent += 1
        coid = order.client_order_id
        age_s = (self.rest.http.now_ms() - (intent.ts if intent is not None else order.created_ms)) / 1000
        entry_blocked = not order.reduce_only and self.entries_blocked
        if intent is not None and age_s <= self.config.intent_resend_max_age_s and not entry_blocked:
            self.stats.resent += 1
            log.info(
                "exchange confirmed it has no such order: resending", order=coid, intent_age_s=round(age_s, 2)
            )
            await self.ledger.auditor.record(
                AuditAction.ORDER_CREATE, "Order", coid, symbol=order.symbol, trace_id=order.trace_id,
                reason="resent: the exchange confirmed by orderLinkId, after the recv window, that it does not have it",
            )  # fmt: skip
            return True
        self.stats.failed += 1
        await self.ledger.command(
            coid, OrderStatus.FAILED, success=False,
            reason="outcome unknown; the exchange confirmed by orderLinkId after the recv window that it does "
            f"not have the order; not resent (intent {age_s:.1f} s old, entries blocked: {self.entries_blocked})",
        )  # fmt: skip
        return None

    async def settle_stored(self, order: Order) -> str:
        """Reconciliation's entry for a Pending order of an earlier process (or of a failed call here).

        Its last request was signed no later than `sent_ms` plus the longest a create call can take, and no
        later than this process's start: the recv window is waited out from the earlier of the two.
        """
        if order.sent_ms is None:
            # Never marked sent: the row is written before the request, and the mark before the request leaves.
            await self.ledger.command(
                order.client_order_id, OrderStatus.FAILED, success=False,
                reason="written but never sent (the process stopped before the request left)",
            )  # fmt: skip
            self.stats.failed += 1
            return "failed"
        http = self.rest.http
        longest_call_ms = int((http.timeout_s + http.rate_limit_max_wait_s + 1) * http.max_attempts * 1000)
        signed_by = min(order.sent_ms + longest_call_ms, max(self.process_start_ms, order.sent_ms))
        return await self.settle(
            order, self.intents.get(order.intent_id or ""), signed_by + self._recv_window_ms()
        )

    # --- amend, cancel, close -----------------------------------------------------------------------

    async def amend(self, client_order_id: str, *, price: Decimal | None = None, quantity: Decimal | None = None,
                    reason: str = "amend") -> None:  # fmt: skip
        """Amend a working order; the new terms are taken over when the exchange reports them."""
        order = await self._working(client_order_id)
        await self.ledger.auditor.record(
            AuditAction.ORDER_AMEND, "Order", client_order_id, reason=reason, symbol=order.symbol,
            new={"price": None if price is None else str(price), "quantity": None if quantity is None else str(quantity)},
            trace_id=order.trace_id,
        )  # fmt: skip
        try:
            await self.rest.amend_order(
                order.symbol, order_link_id=client_order_id, price=price, qty=quantity
            )
        except BybitOrderNotFound:
            await self._refresh(order)
            raise

    async def cancel(self, client_order_id: str, *, reason: str = "cancel", actor: str = "execution") -> None:
        """Ask the exchange to cancel; the order is Cancelled when the exchange says so (stream or lookup)."""
        order = await self._working(client_order_id)
        await self.ledger.auditor.record(
            AuditAction.ORDER_CANCEL, "Order", client_order_id, reason=reason, symbol=order.symbol, actor=actor,
            trace_id=order.trace_id,
        )  # fmt: skip
        try:
            await self.rest.cancel_order(order.symbol, order_link_id=client_order_id)
        except BybitOrderNotFound:
            await self._refresh(order)  # already filled or cancelled: take its real state

    async def cancel_all(
        self,
        symbol: str | None = None,
        *,
        reason: str,
        actor: str = "execution",
        order_filter: BybitOrderFilter = BybitOrderFilter.ORDER,
    ) -> list[str]:
        """Cancel every open order of `symbol` (or of every USDT contract); returns the orderLinkIds.

        Orders only by default: an unfiltered cancel-all also removes the positions' take-profit and
        stop-loss on the exchange, which would leave them unprotected exactly when trading stops.
        """
        kept = " (the positions' TP/SL kept)" if order_filter is BybitOrderFilter.ORDER else ""
        await self.ledger.auditor.record(
            AuditAction.ORDER_CANCEL, "Account", symbol or "*", reason=f"cancel all{kept}: {reason}", actor=actor,
        )  # fmt: skip
        acks = await self.rest.cancel_all_orders(symbol, order_filter=order_filter)
        return [a.order_link_id or a.order_id for a in acks]

    async def close_position(self, symbol: str, *, reason: str, source: str = "operator") -> SubmitResult:
        """A reduce-only market order for the symbol's whole position as the exchange reports it."""
        reports = await self.rest.get_positions(symbol)  # a failure raises: never "flat" by accident
        live = [r for r in reports if r.side is not None and r.size > 0]
        if not live:
            return SubmitResult(f"close-{symbol}", False, reason=f"{symbol}: no position on the exchange")
        pos = live[0]
        assert pos.side is not None
        intent = TradeIntent(
            intent_id=f"close-{symbol}-{self.rest.http.now_ms()}", symbol=symbol, side=pos.side.opposite(),
            order_type=OrderType.MARKET, ts=self.rest.http.now_ms(), quantity=pos.size, reduce_only=True,
            time_in_force=TimeInForce.IOC, source=source, reason=reason,
        )  # fmt: skip
        return await self.submit(intent)

    async def _working(self, client_order_id: str) -> Order:
        order = await self.ledger.get(client_order_id)
        if order is None:
            raise KeyError(f"no order {client_order_id!r}")
        if order.status.is_terminal:
            raise ValueError(f"order {client_order_id} is {order.status}: nothing to change")
        return order

    async def _refresh(self, order: Order) -> None:
        found = await self.rest.find_order(order.symbol, order_link_id=order.client_order_id)
        if found is not None:
            await self.ledger.apply_report(found, source="lookup")

    # --- PostOnly: timeout and re-price -------------------------------------------------------------

    def _arm_post_only_timer(self, order: Order) -> None:
        coid = order.client_order_id
        if coid in self._timers:
            return

        async def expire() -> None:
            await asyncio.sleep(self.config.post_only_timeout_s)
            current = await self.ledger.get(coid)
            if current is not None and current.status is OrderStatus.PLACED:
                self._timed_out.add(coid)  # this cancel, and only this one, asks for a re-price
                with contextlib.suppress(Exception):
                    await self.cancel(
                        coid, reason=f"PostOnly unfilled for {self.config.post_only_timeout_s:g} s: re-price"
                    )

        task = asyncio.get_running_loop().create_task(expire(), name=f"postonly {coid}")
        self._timers[coid] = task
        task.add_done_callback(lambda _t: self._timers.pop(coid, None))

    async def _on_order_end(self, order: Order, report: BybitOrderReport | None) -> None:
        timer = self._timers.pop(order.client_order_id, None)
        if timer is not None:
            timer.cancel()
        if order.time_in_force is not TimeInForce.POST_ONLY or order.status is not OrderStatus.CANCELLED:
            return
        intent = self.intents.get(order.intent_id or "")
        if intent is None or order.attempt is None or intent.quantity is None:
            return
        crossed = report is not None and report.reject_reason == POST_ONLY_CROSSED
        # Cancelled by our own PostOnly timer; an operator's or a kill switch's cancel is final.
        timed_out = order.client_order_id in self._timed_out and report is not None
        self._timed_out.discard(order.client_order_id)
        if not (crossed or timed_out) or order.attempt > self.config.post_only_max_reprices:
            return
        if self.entries_blocked and not intent.reduce_only:
            return
        filled = sum(
            (o.filled_quantity for o in await self.ledger.orders.get_by_intent(intent.intent_id)), Decimal(0)
        )
        remaining = intent.quantity - filled
        touch = self.market.touch(intent.symbol) if self.market is not None else None
        if touch is None:
            tickers = await self.rest.get_tickers(intent.symbol)
            if not tickers or tickers[0].bid_price is None or tickers[0].ask_price is None:
                return
            touch = (tickers[0].bid_price, tickers[0].ask_price)
        price = touch[0] if intent.side is Side.BUY else touch[1]  # the passive side of the touch
        if remaining <= 0:
            return
        self.stats.reprices += 1
        log.info("PostOnly re-price", intent=intent.intent_id, attempt=order.attempt + 1, price=str(price),
                 why="would cross" if crossed else "timed out")  # fmt: skip
        async with trace_operation("post_only_reprice", trace_id=order.trace_id):
            new = await self._write(intent, attempt=order.attempt + 1, price=price, quantity=remaining)
            await self._send_and_settle(new, intent)


def _tif(order: Order) -> TimeInForce | None:
    return None if order.order_type is OrderType.MARKET else order.time_in_force


def _result(stored: dict[str, Any]) -> SubmitResult:
    status = stored.get("status")
    return SubmitResult(**{**stored, "status": None if status is None else OrderStatus(status)})
