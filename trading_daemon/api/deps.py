"""The dependencies every route declares: the live daemon and the caller with the role it needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from trading_daemon.api.auth import require_role
from trading_daemon.api.context import DaemonContext
from trading_daemon.api.principal import Principal, Role


def daemon(request: Request) -> DaemonContext:
    context: DaemonContext = request.app.state.daemon
    return context


Daemon = Annotated[DaemonContext, Depends(daemon)]
Viewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]
Trader = Annotated[Principal, Depends(require_role(Role.TRADER))]
Admin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
