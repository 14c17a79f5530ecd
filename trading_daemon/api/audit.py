"""Every control action taken through the API is an audit row naming the user who took it."""

from __future__ import annotations

from typing import Any

from infra.db.repositories.audit import AuditRepository
from schemas.enums import AuditAction
from schemas.trading import AuditEvent
from trading_daemon.api.context import DaemonContext
from trading_daemon.api.principal import Principal


async def audit_action(
    ctx: DaemonContext,
    principal: Principal,
    action: AuditAction,
    entity_type: str,
    entity_id: str,
    *,
    reason: str | None = None,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    success: bool = True,
    error: str | None = None,
) -> None:
    """Append the row (actor `user:<name>`, the role in the context); raises if the database refuses it,
    so that an action is never reported done without its audit row."""
    await AuditRepository(ctx.pool).append(
        AuditEvent(
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            actor=f"user:{principal.username}",
            old_value=old,
            new_value=new,
            reason=reason,
            success=success,
            error_message=error,
            context={"role": str(principal.role), "via": "api"},
            ts=ctx.exchange_now_ms(),
        )
    )
