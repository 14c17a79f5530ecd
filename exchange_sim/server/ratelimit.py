"""Bybit's two rate limits (docs/exchange_protocol.md §1.5), measured on the exchange clock.

* Per IP over all ``/v5`` REST traffic: ``ip_limit`` requests per ``ip_window_ms``; beyond it the IP is
  banned for ``ip_ban_ms`` and every request gets HTTP 403 with no envelope and no rate-limit headers.
* Per UID (API key) and endpoint, rolling 1-second window: beyond the limit, HTTP 200 with retCode 10006.
  Every response of a limited private endpoint carries ``X-Bapi-Limit``, ``X-Bapi-Limit-Status`` and
  ``X-Bapi-Limit-Reset-Timestamp``.

Windows use the exchange clock like every other timestamp the exchange sends, so the reset timestamp is
comparable with ``/v5/market/time``; at ``speed`` > 1 the limits are therefore looser in wall time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from exchange_sim.config import RateLimitConfig

WINDOW_MS = 1000

# Per-UID limits of the endpoints in docs/exchange_protocol.md §1.5 (UTA, non-VIP). query-api, account/info and
# coin/query-info are not in that table; they get a limit of their own kind so that a polling client
# still meets one.
DEFAULT_ENDPOINT_LIMITS: dict[str, int] = {
    "/v5/order/create": 10,
    "/v5/order/amend": 10,
    "/v5/order/cancel": 10,
    "/v5/order/cancel-all": 10,
    "/v5/order/realtime": 50,
    "/v5/order/history": 50,
    "/v5/execution/list": 50,
    "/v5/position/list": 50,
    "/v5/position/set-leverage": 10,
    "/v5/position/trading-stop": 10,
    "/v5/account/wallet-balance": 50,
    "/v5/account/fee-rate": 5,
    "/v5/account/info": 50,
    "/v5/user/query-api": 10,
    "/v5/asset/coin/query-info": 5,
}


@dataclass(frozen=True, slots=True)
class LimitStatus:
    """The outcome of one request against its endpoint bucket, with the header values."""

    allowed: bool
    limit: int
    remaining: int
    reset_ms: int

    def headers(self) -> dict[str, str]:
        """The three ``X-Bapi-Limit*`` headers."""
        return {
            "X-Bapi-Limit": str(self.limit),
            "X-Bapi-Limit-Status": str(self.remaining),
            "X-Bapi-Limit-Reset-Timestamp": str(self.reset_ms),
        }


class RateLimiter:
    """Per-IP and per-UID/endpoint sliding windows."""

    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        self.endpoint_limits = dict(
            DEFAULT_ENDPOINT_LIMITS if config.endpoint_limits is None else config.endpoint_limits
        )
        self._ip_hits: dict[str, deque[int]] = {}
        self._ip_banned_until: dict[str, int] = {}
        self._uid_hits: dict[tuple[str, str], deque[int]] = {}

    def reset(self) -> None:
        """Forget every window and ban (admin API)."""
        self._ip_hits.clear()
        self._ip_banned_until.clear()
        self._uid_hits.clear()

    def check_ip(self, ip: str, now: int) -> bool:
        """Count one REST request from ``ip``; ``False`` if the IP is (now) banned."""
        if not self.config.enabled:
            return True
        if self._ip_banned_until.get(ip, 0) > now:
            return False
        hits = self._ip_hits.setdefault(ip, deque())
        while hits and hits[0] <= now - self.config.ip_window_ms:
            hits.popleft()
        if len(hits) >= self.config.ip_limit:
            self._ip_banned_until[ip] = now + self.config.ip_ban_ms
            hits.clear()
            return False
        hits.append(now)
        return True

    def check_uid(self, api_key: str, path: str, now: int) -> LimitStatus | None:
        """Count one request of ``api_key`` to ``path``; ``None`` if the endpoint is not limited."""
        limit = self.endpoint_limits.get(path)
        if limit is None or not self.config.enabled:
            return None
        hits = self._uid_hits.setdefault((api_key, path), deque())
        while hits and hits[0] <= now - WINDOW_MS:
            hits.popleft()
        if len(hits) >= limit:
            return LimitStatus(False, limit, 0, hits[0] + WINDOW_MS)
        hits.append(now)
        return LimitStatus(True, limit, limit - len(hits), now)
