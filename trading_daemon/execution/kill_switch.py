"""The kill switch: halt entries, cancel every open order, optionally flatten every position; audited.

The positions' take-profit and stop-loss orders on the exchange are left in place (cancel-all with
`orderFilter=Order`): halting trading must not strip the positions of their protection.

Callable from code (`await kill_switch.engage(reason=…, actor=…, flatten=True)`) and later from the API.
The halt is stored per account in `execution_state`, so a restarted daemon stays halted until someone
releases it (`release`): a kill switch that a restart undid would be no kill switch. Exits (reduce-only)
stay allowed while halted — they can only reduce risk — and flattening uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from infra.db.repositories import ExecutionStateRepository
from schemas.enums import AuditAction
from trading_daemon.execution.manager import ExecutionManager

log = structlog.get_logger(__name__)

_KEY = "halt"


@dataclass
class KillSwitchReport:
    reason: str
    actor: str
    ts: int
    cancelled: list[str] = field(default_factory=list)
    flattened: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class KillSwitch:
    """Halts one account's trading through its execution manager."""

    def __init__(
        self, manager: ExecutionManager, state: ExecutionStateRepository, *, account_key: str
    ) -> None:
        self.manager = manager
        self.state = state
        self.account_key = account_key

    @property
    def engaged(self) -> bool:
        return self.manager.halt_reason is not None

    async def load(self) -> dict[str, Any] | None:
        """Take over a halt stored by an earlier process (None when trading is not halted)."""
        stored = await self.state.get(self.account_key, _KEY)
        if stored is not None:
            self.manager.halt_reason = str(stored.get("reason", "halted"))
            log.warning("kill switch engaged since an earlier run: entries refused", **stored)
        return stored if isinstance(stored, dict) else None

    async def engage(
        self, *, reason: str, actor: str = "operator", flatten: bool = False
    ) -> KillSwitchReport:
        """Halt entries, cancel all open orders, and with `flatten` close every position at market."""
        now = self.manager.rest.http.now_ms()
        report = KillSwitchReport(reason, actor, now)
        self.manager.halt_reason = reason  # first: no entry may start from here on
        audit = self.manager.ledger.auditor
        await self.state.set(
            self.account_key, _KEY, {"reason": reason, "actor": actor, "ts": now, "flatten": flatten}
        )
        await audit.record(
            AuditAction.EMERGENCY_STOP, "Account", self.account_key, reason=reason, actor=actor,
            new={"halted": True, "flatten": flatten},
        )  # fmt: skip
        log.error("KILL SWITCH engaged", reason=reason, actor=actor, flatten=flatten)
        try:
            report.cancelled = await self._cancel_orders(reason=reason, actor=actor)
        except Exception as exc:  # keep going: flattening matters more than a failed cancel-all
            report.errors.append(f"cancel all: {exc}")
        if flatten:
            try:
                positions = await self.manager.rest.get_positions()
            except Exception as exc:
                report.errors.append(f"positions: {exc}")
                positions = []
            for position in positions:
                if position.side is None or position.size <= 0:
                    continue
                try:
                    result = await self.manager.close_position(
                        position.symbol, reason=f"kill switch: {reason}", source=actor
                    )
                    report.flattened.append(
                        {"symbol": position.symbol, "size": str(position.size), "accepted": result.accepted,
                         "order": result.client_order_id, "reason": result.reason}
                    )  # fmt: skip
                except Exception as exc:
                    report.errors.append(f"flatten {position.symbol}: {exc}")
        await audit.record(
            AuditAction.EMERGENCY_STOP, "Account", self.account_key, actor=actor, success=not report.errors,
            reason=f"kill switch done: {len(report.cancelled)} cancelled, {len(report.flattened)} flattened",
            new={"cancelled": report.cancelled, "flattened": report.flattened, "errors": report.errors},
            error="; ".join(report.errors) or None,
        )  # fmt: skip
        return report

    async def _cancel_orders(self, *, reason: str, actor: str) -> list[str]:
        # Orders only (the manager's default filter): the positions' TP/SL stay on the exchange.
        return await self.manager.cancel_all(reason=f"kill switch: {reason}", actor=actor)

    async def release(self, *, reason: str, actor: str = "operator") -> None:
        """Allow entries again."""
        previous = self.manager.halt_reason
        await self.state.delete(self.account_key, _KEY)
        self.manager.halt_reason = None
        await self.manager.ledger.auditor.record(
            AuditAction.EMERGENCY_STOP, "Account", self.account_key, reason=f"kill switch released: {reason}",
            actor=actor, old={"halted": True, "reason": previous}, new={"halted": False},
        )  # fmt: skip
        log.warning("kill switch released", reason=reason, actor=actor)
