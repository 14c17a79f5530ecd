"""The injected rate-limit fault: retCode 10006 with Bybit's `X-Bapi-Limit*` headers, before processing."""

from __future__ import annotations

from typing import Any

ORDER = {
    "category": "linear",
    "symbol": "BTCUSDT",
    "side": "Buy",
    "orderType": "Limit",
    "qty": "0.010",
    "price": "63000.00",
}


async def test_ratelimit_fault_answers_10006_with_headers(rest: Any, admin: Any, sim: Any) -> None:
    await admin("POST", "/sim/faults", {"error_rate": 1.0, "error_kinds": ["ratelimit"]})
    status, headers, body = await rest.post("/v5/order/create", ORDER)
    now = sim.venue.clock.now()
    assert status == 200 and body["retCode"] == 10006 and body["result"] == {}
    assert headers["X-Bapi-Limit"] == "10" and headers["X-Bapi-Limit-Status"] == "0"
    reset = int(headers["X-Bapi-Limit-Reset-Timestamp"])
    assert now < reset <= now + 1000  # on the exchange clock, one window ahead
    # Public market data is refused the same way (the injected kind ignores the endpoint's own limits).
    status, headers, body = await rest.get("/v5/market/time", signed=False)
    assert body["retCode"] == 10006 and headers["X-Bapi-Limit-Status"] == "0"
    await admin("POST", "/sim/faults", {"error_rate": 0.0})
    listed = await rest.ok("GET", "/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT"})
    assert listed["list"] == []  # refused before processing: nothing was placed
    bad = await admin("POST", "/sim/faults", {"error_kinds": ["nope"]}, status=400)
    assert "ratelimit" in bad["error"]
