"""`/ws`: the live feed (`trading_daemon.api.hub`), behind the same access tokens as the HTTP routes.

The token comes in the first message, `{"op": "auth", "token": "<access token>"}`, within AUTH_TIMEOUT_S of
the connection, not in the URL, where proxies' and servers' access logs would keep it. A missing, late or
bad token is answered with an `error` message and the close code 4401; a good one with the hub's `hello`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import structlog
from fastapi import APIRouter, HTTPException, WebSocket

from trading_daemon.api.context import DaemonContext
from trading_daemon.api.hub import control_message
from trading_daemon.api.principal import Principal

log = structlog.get_logger(__name__)

router = APIRouter()

AUTH_TIMEOUT_S = 5.0
TOKEN_RECHECK_S = 30.0  # how soon a revoked token (a password change, a deactivated user) loses the feed
CLOSE_UNAUTHORIZED = 4401  # 4000-4999: the application's own codes; 401 as in HTTP
CLOSE_INTERNAL = 1011
_AUTH_HINT = 'send {"op": "auth", "token": "<access token>"} first'


@router.websocket("/ws")
async def live_feed(websocket: WebSocket) -> None:
    """Authenticate with the first message, then the hub serves the connection until either side leaves."""
    await websocket.accept()
    authenticated = await _authenticate(websocket)
    if authenticated is None:
        return
    principal, token = authenticated
    ctx: DaemonContext = websocket.app.state.daemon
    if ctx.hub is None:
        await _refuse(websocket, "the live feed is not running in this daemon", CLOSE_INTERNAL)
        return
    # The token keeps being checked while the socket lives: it expires, or a password change revokes it.
    serving = asyncio.create_task(ctx.hub.serve(websocket, principal), name="ws-serve")
    watching = asyncio.create_task(_until_token_ends(websocket, token), name="ws-token")
    done, _ = await asyncio.wait({serving, watching}, return_when=asyncio.FIRST_COMPLETED)
    if watching in done:
        await _refuse(
            websocket, f"{watching.result()}: authenticate again"
        )  # the hub's reader sees the close
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, AUTH_TIMEOUT_S)
    serving.cancel()
    watching.cancel()
    await asyncio.gather(serving, watching, return_exceptions=True)


async def _until_token_ends(websocket: WebSocket, token: str) -> str:
    """Re-check the token every TOKEN_RECHECK_S and at its expiry; return why it no longer holds."""
    auth = websocket.app.state.auth
    while True:
        try:
            grant = await auth.verify_grant(token)
        except HTTPException as exc:
            return f"the access token no longer holds ({exc.detail})"
        except Exception:  # the user store is down: keep the feed, check again later
            grant = None
        # The wall clock, like the token's `exp` claim.
        left_s = TOKEN_RECHECK_S if grant is None else (grant.expires_at_ms - int(time.time() * 1000)) / 1000
        await asyncio.sleep(max(0.05, min(TOKEN_RECHECK_S, left_s)))


async def _authenticate(websocket: WebSocket) -> tuple[Principal, str] | None:
    """The caller and their token, or None once the socket was refused (or left)."""
    try:
        message = await asyncio.wait_for(websocket.receive(), AUTH_TIMEOUT_S)
    except TimeoutError:
        await _refuse(websocket, f"no auth message within {AUTH_TIMEOUT_S:g} s: {_AUTH_HINT}")
        return None
    if message["type"] == "websocket.disconnect":
        return None
    token = _token(message.get("text"))
    if token is None:
        await _refuse(websocket, f"the first message must authenticate: {_AUTH_HINT}")
        return None
    try:
        principal: Principal = await websocket.app.state.auth.verify_access(token)
    except HTTPException as exc:
        await _refuse(websocket, f"authentication failed: {exc.detail}")
        return None
    except Exception as exc:  # the user store is down: not the caller's fault, and no 4401 (it would log out)
        log.warning("ws authentication unavailable", error=str(exc))
        await _refuse(websocket, "authentication is unavailable: try again shortly", CLOSE_INTERNAL)
        return None
    return principal, token


def _token(text: str | None) -> str | None:
    """The token of an auth message, or None for anything else."""
    if text is None:
        return None
    try:
        request = json.loads(text)
    except ValueError:
        return None
    if not isinstance(request, dict) or request.get("op") != "auth":
        return None
    token = request.get("token")
    return token if isinstance(token, str) and token else None


async def _refuse(websocket: WebSocket, error: str, code: int = CLOSE_UNAUTHORIZED) -> None:
    with contextlib.suppress(Exception):  # the client may be gone already
        await websocket.send_text(control_message("error", {"error": error}))
        await websocket.close(code, "unauthorized" if code == CLOSE_UNAUTHORIZED else "unavailable")
