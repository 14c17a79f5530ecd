"""Execution's audit trail: every action that touches capital or control, through the hash-chained log.

Each row says who (`actor`), what (`action`, the entity, its old and new value), when (`ts`), why (`reason`)
and with which context: the intent's signal context, the market as the daemon saw it at that moment, the
trace id that ties the row to the logs and to the order's other rows (the original spec's example 4). An
order's transition and its audit row are written in one transaction where the caller passes `conn`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import structlog

from infra.db.repositories import AuditRepository
from infra.db.repositories._base import AsyncConn
from schemas.enums import AuditAction
from schemas.trading import AuditEvent
from trading_daemon.observability.trace import current_correlation_id, current_trace_id

log = structlog.get_logger(__name__)

MarketContext = Callable[[str], dict[str, Any] | None]


def to_json(value: Any) -> Any:
    """Records, Decimals and enums as JSON values (Decimals as exact strings)."""
    return msgspec.to_builtins(value, builtin_types=None, str_keys=True)


class Auditor:
    """Writes audit rows for execution, adding the trace id and the market context."""

    def __init__(
        self, repo: AuditRepository, *, actor: str = "execution", market: MarketContext | None = None
    ) -> None:
        self.repo = repo
        self.actor = actor
        self.market = market

    async def record(
        self,
        action: AuditAction,
        entity_type: str,
        entity_id: str,
        *,
        reason: str,
        old: Mapping[str, Any] | None = None,
        new: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        symbol: str | None = None,
        success: bool = True,
        error: str | None = None,
        actor: str | None = None,
        trace_id: str | None = None,
        conn: AsyncConn | None = None,
    ) -> AuditEvent:
        """Append one row; `symbol` adds the market as it is now (`market_data`) to the context."""
        full: dict[str, Any] = dict(context or {})
        if symbol is not None and self.market is not None and "market_data" not in full:
            snapshot = self.market(symbol)
            if snapshot is not None:
                full["market_data"] = snapshot
        event = AuditEvent(
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            actor=actor or self.actor,
            old_value=to_json(dict(old)) if old is not None else None,
            new_value=to_json(dict(new)) if new is not None else None,
            reason=reason,
            success=success,
            error_message=error,
            context=to_json(full) if full else None,
            trace_id=trace_id or current_trace_id(),
            correlation_id=current_correlation_id(),
        )
        return await self.repo.append(event, conn=conn)
