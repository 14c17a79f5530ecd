"""The bot's stop and start by an operator: entries refused while stopped, nothing cancelled; audited.

Softer than the kill switch: resting orders, open positions, their protection on the exchange and every
exit keep working; only new entries are refused (`ExecutionManager.paused_reason`). The stop is stored per
account in `execution_state`, so a daemon restarted by systemd stays stopped until someone starts it.
"""

from __future__ import annotations

from typing import Any

import structlog

from infra.db.repositories import ExecutionStateRepository
from schemas.enums import AuditAction
from trading_daemon.execution.manager import ExecutionManager

log = structlog.get_logger(__name__)

_KEY = "paused"


class BotPause:
    """Stops and starts one account's entries through its execution manager."""

    def __init__(
        self, manager: ExecutionManager, state: ExecutionStateRepository, *, account_key: str
    ) -> None:
        self.manager = manager
        self.state = state
        self.account_key = account_key

    @property
    def paused(self) -> bool:
        return self.manager.paused_reason is not None

    async def load(self) -> dict[str, Any] | None:
        """Take over a stop stored by an earlier process (None when the bot runs)."""
        stored = await self.state.get(self.account_key, _KEY)
        if isinstance(stored, dict):
            self.manager.paused_reason = str(stored.get("reason", "stopped"))
            log.warning("bot stopped since an earlier run: entries refused", **stored)
            return stored
        return None

    async def stop(self, *, reason: str, actor: str) -> bool:
        """Refuse entries from now on; False when the bot was already stopped (nothing recorded)."""
        if self.paused:
            return False
        now = self.manager.rest.http.now_ms()
        self.manager.paused_reason = reason  # first: no entry may start from here on
        await self.state.set(self.account_key, _KEY, {"reason": reason, "actor": actor, "ts": now})
        await self.manager.ledger.auditor.record(
            AuditAction.BOT_STOP, "Account", self.account_key, reason=reason, actor=actor,
            new={"paused": True},
        )  # fmt: skip
        log.warning("bot stopped: entries refused", reason=reason, actor=actor)
        return True

    async def start(self, *, reason: str, actor: str) -> bool:
        """Allow entries again; False when the bot was not stopped."""
        previous = self.manager.paused_reason
        if previous is None:
            return False
        await self.state.delete(self.account_key, _KEY)
        self.manager.paused_reason = None
        await self.manager.ledger.auditor.record(
            AuditAction.BOT_START, "Account", self.account_key, reason=reason, actor=actor,
            old={"paused": True, "reason": previous}, new={"paused": False},
        )  # fmt: skip
        log.warning("bot started: entries allowed", reason=reason, actor=actor)
        return True
