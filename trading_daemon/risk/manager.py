"""The risk manager: sizes entries and is the pre-trade check every intent passes before it is an order.

Two roles, one set of limits (`infra.settings.RiskConfig`, docs/decisions.md):

* **Sizing** (`size_entry`, called by the decision engine): the notional at which the entry's stop-loss
  (the strategy's, else DEFAULT_STOP_LOSS_PCT away) loses RISK_PER_TRADE_PCT of equity, cut to the room
  left under the symbol's limit, MAX_EXPOSURE_USDT and the margin (available balance × LEVERAGE); a symbol
  already occupied is refused as `position_open` first, as the check would.
* **Checking** (`check`, a `PreTradeCheck`: execution runs it before any intent becomes an order, and the
  engine runs it before submitting). Rules in order; the first that fails refuses the intent, which is
  a `risk_reject` audit row naming the rule (written here on the engine's path, by execution on its own):

  exits (reduce-only): `exit_without_position` (nothing open on the other side to reduce); a quantity
  above the position is cut to it. Nothing else stops an exit.

  entries: the health rules of `trading_daemon.risk.health` (book stale/resyncing/invalid, error burst,
  breaker open, manipulation), `account_unreconciled`, `daily_loss_limit` (realised + unrealised PnL
  since 00:00 UTC ≤ −DAILY_LOSS_LIMIT_USDT), `no_equity`, `no_price`, `position_open` (the symbol
  already holds a position, an open entry order or an approved entry not yet visible: no stacking),
  `max_open_positions`, `min_order_size`, `symbol_exposure`, `max_exposure`, `margin`. A notional above
  a limit whose room still reaches MIN_ORDER_SIZE_USDT is approved cut to that room.

Approved entries are *reserved* until the account shows them (or RESERVATION_TTL_MS passes), so a burst
of signals checked before any of their orders exists cannot together pass a limit each passes alone.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Any

import msgspec
import structlog

from infra.settings import RiskConfig
from schemas.enums import AuditAction, Side
from schemas.times import now_ms
from schemas.trading import AuditEvent, Position, TradeIntent
from trading_daemon.execution.contracts import AccountView, CheckVerdict
from trading_daemon.observability.metrics import DaemonMetrics
from trading_daemon.risk.health import HealthRule, TradingHealth, describe_detection

log = structlog.get_logger(__name__)

DAY_MS = 86_400_000
RESERVATION_TTL_MS = 30_000
CENT = Decimal("0.01")


class RiskRule(StrEnum):
    """Rules of the risk manager itself (the health rules are `HealthRule`)."""

    EXIT_WITHOUT_POSITION = "exit_without_position"
    ACCOUNT_UNRECONCILED = "account_unreconciled"
    DAILY_LOSS_LIMIT = "daily_loss_limit"
    NO_EQUITY = "no_equity"
    NO_PRICE = "no_price"
    POSITION_OPEN = "position_open"
    MAX_OPEN_POSITIONS = "max_open_positions"
    MIN_ORDER_SIZE = "min_order_size"
    SYMBOL_EXPOSURE = "symbol_exposure"
    MAX_EXPOSURE = "max_exposure"
    MARGIN = "margin"


class RiskRefused(Exception):
    """An entry cannot be sized or sent; `rule` names the rule, `details` what it looked at."""

    def __init__(self, rule: str, reason: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason
        self.details = details or {}


@dataclass(frozen=True)
class Sizing:
    """An entry's size and protective stop, with the numbers that decided them."""

    notional: Decimal
    stop_loss: Decimal
    bound_by: str  # risk_per_trade, symbol_exposure, max_exposure or margin
    details: dict[str, Any]


@dataclass
class _Reservation:
    symbol: str
    notional: Decimal
    ts_ms: int


@dataclass
class _Exposure:
    by_symbol: dict[str, Decimal] = field(default_factory=dict)
    occupied: set[str] = field(
        default_factory=set
    )  # symbols with a position, an entry order or a reservation

    @property
    def total(self) -> Decimal:
        return sum(self.by_symbol.values(), Decimal(0))


def _json(value: Any) -> Any:
    return msgspec.to_builtins(value, enc_hook=str)


class RiskManager:
    """Sizing and the pre-trade check (module docstring); `state()` for the API."""

    name = "risk"

    def __init__(
        self,
        config: RiskConfig,
        health: TradingHealth,
        *,
        metrics: DaemonMetrics | None = None,
        audit: Callable[[AuditEvent], None] | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.config = config
        self.health = health
        self.metrics = metrics
        self.audit = audit
        self.clock = clock
        self._reserved: dict[str, _Reservation] = {}
        self.refusals: Counter[str] = Counter()
        self.approvals = 0
        self.recent_refusals: deque[dict[str, Any]] = deque(maxlen=50)
        self._halted: dict[str, str] = {}  # symbol → rule, for the entries_halted gauge
        self._last_account: AccountView | None = None

    # -- limits -------------------------------------------------------------------------------------------

    def symbol_limit(self, symbol: str) -> Decimal:
        return self.config.symbol_exposure_limits.get(symbol, self.config.max_symbol_exposure_usdt)

    def _price(self, symbol: str, intent: TradeIntent | None = None) -> Decimal | None:
        if intent is not None and intent.price is not None:
            return intent.price
        return self.health.mid(symbol)

    def _exposure(self, account: AccountView, *, ignore: str | None = None) -> _Exposure:
        """Notional by symbol of open positions, open entry orders and reservations not yet visible."""
        self._expire_reservations()
        ex = _Exposure()
        for p in account.open_positions():
            if p.quantity > 0:
                price = p.entry_price if p.entry_price > 0 else (self.health.mid(p.symbol) or Decimal(0))
                ex.by_symbol[p.symbol] = ex.by_symbol.get(p.symbol, Decimal(0)) + p.quantity * price
                ex.occupied.add(p.symbol)
        for o in account.open_orders():
            if o.reduce_only:
                continue
            price = o.price if o.price is not None else (self.health.mid(o.symbol) or Decimal(0))
            ex.by_symbol[o.symbol] = ex.by_symbol.get(o.symbol, Decimal(0)) + o.remaining_quantity * price
            ex.occupied.add(o.symbol)
        for intent_id, r in self._reserved.items():
            if intent_id == ignore or r.symbol in ex.occupied:
                continue  # visible in the account now (or the intent being checked again by execution)
            ex.by_symbol[r.symbol] = ex.by_symbol.get(r.symbol, Decimal(0)) + r.notional
            ex.occupied.add(r.symbol)
        return ex

    def _expire_reservations(self) -> None:
        horizon = self.clock() - RESERVATION_TTL_MS
        for intent_id in [i for i, r in self._reserved.items() if r.ts_ms < horizon]:
            del self._reserved[intent_id]

    def release(self, intent_id: str) -> None:
        """Forget an approved entry's reservation (its order was refused, or is visible in the account)."""
        self._reserved.pop(intent_id, None)

    def daily_pnl(self, account: AccountView) -> Decimal:
        """Realised PnL since 00:00 UTC plus the unrealised PnL of the open positions (USDT, after fees)."""
        day_start = self.clock() // DAY_MS * DAY_MS
        unrealised = sum((p.unrealized_pnl for p in account.open_positions()), Decimal(0))
        return account.realized_pnl_since(day_start) + unrealised

    # -- sizing -------------------------------------------------------------------------------------------

    def size_entry(
        self, symbol: str, side: Side, price: Decimal, stop_loss: Decimal | None, account: AccountView
    ) -> Sizing:
        """The notional and stop of an entry at `price` (module docstring); raises `RiskRefused`."""
        cfg = self.config
        if not (price.is_finite() and price > 0):
            raise RiskRefused(RiskRule.NO_PRICE, f"{symbol}: no usable price to size at ({price})")
        equity = account.equity()
        if equity is None or equity <= 0:
            raise RiskRefused(RiskRule.NO_EQUITY, f"the wallet's equity is {equity}: cannot size an entry")
        wrong_side = stop_loss is not None and (
            stop_loss >= price if side is Side.BUY else stop_loss <= price
        )
        if stop_loss is None or wrong_side:
            offset = price * cfg.default_stop_loss_pct / 100
            stop_loss = price - offset if side is Side.BUY else price + offset
        stop_fraction = abs(price - stop_loss) / price
        risk_usdt = equity * cfg.risk_per_trade_pct / 100
        ex = self._exposure(account)
        # Checked here as well as in the pre-trade check: sized first, a symbol whose resting entry takes its
        # room would be refused as `min_order_size`, which hides why.
        self._refuse_stacking(symbol, ex)
        available = account.available_balance()
        rooms = {
            "risk_per_trade": risk_usdt / stop_fraction,
            "symbol_exposure": self.symbol_limit(symbol) - ex.by_symbol.get(symbol, Decimal(0)),
            "max_exposure": cfg.max_exposure_usdt - ex.total,
            "margin": (available if available is not None else equity) * cfg.leverage,
        }
        bound_by = min(rooms, key=lambda k: rooms[k])
        notional = max(Decimal(0), rooms[bound_by]).quantize(CENT, rounding=ROUND_DOWN)
        details = {
            "equity": str(equity),
            "price": str(price),
            "stop_loss": str(stop_loss),
            "stop_fraction": float(stop_fraction),
            "risk_usdt": str(risk_usdt.quantize(CENT)),
            "rooms": {k: str(v.quantize(CENT)) for k, v in rooms.items()},
            "bound_by": bound_by,
        }
        if notional < cfg.min_order_size_usdt:
            raise RiskRefused(
                RiskRule.MIN_ORDER_SIZE,
                f"{symbol}: sized notional {notional} USDT (bound by {bound_by}) is below MIN_ORDER_SIZE_USDT "
                f"{cfg.min_order_size_usdt}",
                details,
            )
        return Sizing(notional=notional, stop_loss=stop_loss, bound_by=bound_by, details=details)

    @staticmethod
    def _refuse_stacking(symbol: str, ex: _Exposure) -> None:
        if symbol in ex.occupied:
            raise RiskRefused(
                RiskRule.POSITION_OPEN,
                f"{symbol} already holds a position, an open entry or an approved entry: no stacking",
                {"symbol_exposure": str(ex.by_symbol.get(symbol, Decimal(0)))},
            )

    # -- the pre-trade check ------------------------------------------------------------------------------

    async def check(self, intent: TradeIntent, account: AccountView) -> CheckVerdict:
        """PreTradeCheck: approve (possibly cut) or refuse `intent` (module docstring for the rules).

        Execution runs it and writes the `risk_reject` audit row of a refusal itself (with every check's
        verdict), so this path does not write another."""
        return self.evaluate(intent, account, audit=False)

    def evaluate(self, intent: TradeIntent, account: AccountView, *, audit: bool = True) -> CheckVerdict:
        """The check without the coroutine (no await between reading the limits and reserving); with
        `audit`, a refusal is written to the audit trail here (the decision engine's path)."""
        self._last_account = account
        try:
            verdict = self._exit(intent, account) if intent.reduce_only else self._entry(intent, account)
        except RiskRefused as refused:
            return self._refuse(intent, refused, audit=audit)
        self.approvals += 1
        if not intent.reduce_only:
            self._set_halted(intent.symbol, None)
        return verdict

    def _exit(self, intent: TradeIntent, account: AccountView) -> CheckVerdict:
        position = _position(account.open_positions(), intent.symbol)
        if position is None or position.side is intent.side or position.quantity <= 0:
            held = "nothing" if position is None else f"a {position.side} position of {position.quantity}"
            raise RiskRefused(
                RiskRule.EXIT_WITHOUT_POSITION,
                f"reduce-only {intent.side} of {intent.symbol}: the account holds {held} to reduce",
            )
        details = {"position_quantity": str(position.quantity), "position_side": str(position.side)}
        if intent.quantity is not None and intent.quantity > position.quantity:
            cut = msgspec.structs.replace(intent, quantity=position.quantity)
            return CheckVerdict(True, cut, self.name, f"cut to the position's {position.quantity}", details)
        return CheckVerdict(True, intent, self.name, None, details)

    def _entry(self, intent: TradeIntent, account: AccountView) -> CheckVerdict:
        cfg, symbol = self.config, intent.symbol
        issue = self.health.entry_block(symbol)
        if issue is not None:
            raise RiskRefused(issue.rule, issue.detail, issue.context)
        if not account.reconciled():
            raise RiskRefused(
                RiskRule.ACCOUNT_UNRECONCILED,
                "the account is not reconciled with the exchange: no new entries until it is",
            )
        pnl = self.daily_pnl(account)
        if pnl <= -cfg.daily_loss_limit_usdt:
            raise RiskRefused(
                RiskRule.DAILY_LOSS_LIMIT,
                f"today's PnL {pnl.quantize(CENT)} USDT reached the daily loss limit "
                f"-{cfg.daily_loss_limit_usdt}: entries halted until 00:00 UTC",
                {"daily_pnl": str(pnl), "limit": str(cfg.daily_loss_limit_usdt)},
            )
        ex = self._exposure(account, ignore=intent.intent_id)
        self._refuse_stacking(symbol, ex)
        if len(ex.occupied) >= cfg.max_open_positions:
            raise RiskRefused(
                RiskRule.MAX_OPEN_POSITIONS,
                f"{len(ex.occupied)} positions open or pending (limit MAX_OPEN_POSITIONS {cfg.max_open_positions})",
                {"occupied": sorted(ex.occupied)},
            )
        price = self._price(symbol, intent)
        if price is None:
            raise RiskRefused(RiskRule.NO_PRICE, f"{symbol}: no price to value the entry at")
        notional = intent.notional if intent.notional is not None else (intent.quantity or Decimal(0)) * price
        equity = account.equity()
        available = account.available_balance()
        if equity is None:
            raise RiskRefused(RiskRule.NO_EQUITY, "the wallet has not been read: no equity to risk")
        rooms = [
            (RiskRule.SYMBOL_EXPOSURE, self.symbol_limit(symbol) - ex.by_symbol.get(symbol, Decimal(0))),
            (RiskRule.MAX_EXPOSURE, cfg.max_exposure_usdt - ex.total),
            (RiskRule.MARGIN, (available if available is not None else equity) * cfg.leverage),
        ]
        details: dict[str, Any] = {
            "notional": str(notional),
            "price": str(price),
            "exposure_total": str(ex.total),
            "rooms": {str(rule): str(room.quantize(CENT)) for rule, room in rooms},
        }
        if notional < cfg.min_order_size_usdt:
            raise RiskRefused(
                RiskRule.MIN_ORDER_SIZE,
                f"{symbol}: {notional.quantize(CENT)} USDT is below MIN_ORDER_SIZE_USDT {cfg.min_order_size_usdt}",
                details,
            )
        approved = notional
        cut_by: str | None = None
        for rule, room in rooms:
            if approved > room:
                if room < cfg.min_order_size_usdt:
                    raise RiskRefused(
                        rule,
                        f"{symbol}: {notional.quantize(CENT)} USDT does not fit {rule} "
                        f"(room {max(room, Decimal(0)).quantize(CENT)} USDT)",
                        details,
                    )
                approved, cut_by = room.quantize(CENT, rounding=ROUND_DOWN), str(rule)
        if cut_by is None:
            result = intent
        elif intent.notional is not None:
            result = msgspec.structs.replace(intent, notional=approved)
        else:
            result = msgspec.structs.replace(intent, quantity=(approved / price).normalize())
        self._reserved[intent.intent_id] = _Reservation(symbol, approved, self.clock())
        reason = None if cut_by is None else f"cut to {approved} USDT by {cut_by}"
        return CheckVerdict(True, result, self.name, reason, details)

    def refuse_sizing(
        self, intent_id: str, symbol: str, side: Side, refused: RiskRefused, *, trace_id: str | None = None
    ) -> None:
        """Record an entry that could not be sized as a refusal (audited like any other)."""
        self._record_refusal(
            intent_id, symbol, side, refused, reduce_only=False, trace_id=trace_id,
            value={"intent_id": intent_id, "symbol": symbol, "side": str(side), "stage": "sizing"},
        )  # fmt: skip

    def refuse_manipulation(
        self, intent_id: str, symbol: str, side: Side, detection: object, *, trace_id: str | None = None
    ) -> None:
        """Record an entry the decision engine did not make because a detected manipulation blocks its
        symbol (the engine asks the detectors first, to name the outcome; the refusal is audited here)."""
        issue = RiskRefused(
            HealthRule.MANIPULATION,
            f"manipulation detected in {symbol}: {detection}",
            {"detection": describe_detection(detection)},
        )
        self._record_refusal(
            intent_id, symbol, side, issue, reduce_only=False, trace_id=trace_id,
            value={"intent_id": intent_id, "symbol": symbol, "side": str(side), "stage": "detection"},
        )  # fmt: skip

    def _refuse(self, intent: TradeIntent, refused: RiskRefused, *, audit: bool) -> CheckVerdict:
        self._record_refusal(
            intent.intent_id, intent.symbol, intent.side, refused, reduce_only=intent.reduce_only,
            trace_id=intent.trace_id, value=_json(intent), audit=audit,
        )  # fmt: skip
        return CheckVerdict(False, intent, self.name, f"{refused.rule}: {refused.reason}", refused.details)

    def _record_refusal(
        self, intent_id: str, symbol: str, side: Side, refused: RiskRefused, *, reduce_only: bool,
        trace_id: str | None, value: dict[str, Any], audit: bool = True,
    ) -> None:  # fmt: skip
        rule = str(refused.rule)
        self.refusals[rule] += 1
        self._reserved.pop(intent_id, None)
        if not reduce_only:
            self._set_halted(symbol, rule)
        entry = {
            "ts_ms": self.clock(),
            "intent_id": intent_id,
            "symbol": symbol,
            "side": str(side),
            "rule": rule,
            "reason": refused.reason,
        }
        self.recent_refusals.append(entry)
        if self.metrics is not None:
            self.metrics.risk_rejections.labels(rule=rule).inc()
        log.info("risk refused an intent", **entry, trace_id=trace_id)
        if audit and self.audit is not None:
            self.audit(
                AuditEvent(
                    action=AuditAction.RISK_REJECT,
                    entity_type="trade_intent",
                    entity_id=intent_id,
                    actor="risk",
                    new_value=value,
                    reason=rule,
                    success=False,
                    error_message=refused.reason,
                    context=_json(refused.details) or None,
                    trace_id=trace_id,
                    ts=self.clock(),
                )
            )

    def _set_halted(self, symbol: str, rule: str | None) -> None:
        """Track halts by a standing rule (health, daily loss) for the entries_halted gauge."""
        standing = rule is not None and rule not in _TRANSIENT_RULES
        if standing:
            self._halted[symbol] = rule  # type: ignore[assignment]
        else:
            self._halted.pop(symbol, None)
        if self.metrics is not None:
            self.metrics.entries_halted.labels(symbol=symbol).set(1.0 if standing else 0.0)

    # -- the API ------------------------------------------------------------------------------------------

    def state(self, account: AccountView | None = None) -> dict[str, Any]:
        """Limits, usage, halts and recent refusals (the original spec's `GET /trading/risk-status`)."""
        cfg = self.config
        account = account or self._last_account
        out: dict[str, Any] = {
            "limits": {
                "max_open_positions": cfg.max_open_positions,
                "max_exposure_usdt": str(cfg.max_exposure_usdt),
                "min_order_size_usdt": str(cfg.min_order_size_usdt),
                "max_symbol_exposure_usdt": str(cfg.max_symbol_exposure_usdt),
                "symbol_exposure_limits": {s: str(v) for s, v in cfg.symbol_exposure_limits.items()},
                "leverage": str(cfg.leverage),
                "risk_per_trade_pct": str(cfg.risk_per_trade_pct),
                "daily_loss_limit_usdt": str(cfg.daily_loss_limit_usdt),
            },
            "health": self.health.state(),
            "halted": dict(self._halted),
            "approvals": self.approvals,
            "refusals": dict(self.refusals),
            "recent_refusals": list(self.recent_refusals),
            "reserved": {
                i: {"symbol": r.symbol, "notional": str(r.notional)} for i, r in self._reserved.items()
            },
        }
        if account is not None:
            ex = self._exposure(account)
            out |= {
                "reconciled": account.reconciled(),
                "open_positions": len(ex.occupied),
                "exposure_usdt": str(ex.total.quantize(CENT)),
                "exposure_by_symbol": {s: str(v.quantize(CENT)) for s, v in ex.by_symbol.items()},
                "daily_pnl_usdt": str(self.daily_pnl(account).quantize(CENT)),
                "equity": None if account.equity() is None else str(account.equity()),
            }
        return out


# Refusals about one intent, not a standing state of the symbol.
_TRANSIENT_RULES = frozenset(
    {
        RiskRule.EXIT_WITHOUT_POSITION,
        RiskRule.POSITION_OPEN,
        RiskRule.MIN_ORDER_SIZE,
        RiskRule.SYMBOL_EXPOSURE,
        RiskRule.MAX_EXPOSURE,
        RiskRule.MARGIN,
        RiskRule.MAX_OPEN_POSITIONS,
        RiskRule.NO_PRICE,
    }
)


def _position(positions: Sequence[Position], symbol: str) -> Position | None:
    for p in positions:
        if p.symbol == symbol and p.quantity > 0:
            return p
    return None
