"""The bot, data, trading, market and health routes against a running daemon on the paper exchange."""

from __future__ import annotations

import asyncio
import json

import pytest
import structlog
import websockets

from infra.db.repositories.audit import AuditRepository
from schemas.enums import AuditAction, OrderStatus
from tests.trading_daemon.api.conftest import ADMIN_PASSWORD, PASSWORDS, SECRET_KEY, LiveApi
from tests.trading_daemon.exchange.conftest import API_SECRET

pytestmark = pytest.mark.slow

# (method, path, body) of every read route here: each needs a token, a viewer may read it.
READS = [
    ("GET", "/api/bot/status"),
    ("GET", "/api/data/pairs"),
    ("GET", "/api/data/orderbook/BTCUSDT"),
    ("GET", "/api/data/metrics"),
    ("GET", "/api/data/metrics/ETHUSDT"),
    ("GET", "/api/trading/signals"),
    ("GET", "/api/trading/balance"),
    ("GET", "/api/trading/positions"),
    ("GET", "/api/trading/risk-status"),
    ("GET", "/api/trading/execution-stats"),
    ("GET", "/api/trading/orders"),
    ("GET", "/api/market/klines/BTCUSDT"),
]
CONTROLS = [  # a trader's routes: a viewer is refused
    ("POST", "/api/bot/stop"),
    ("POST", "/api/bot/start"),
    ("POST", "/api/trading/orders/nope/close"),
    ("POST", "/api/trading/positions/BTCUSDT/close"),
    ("POST", "/api/trading/kill-switch"),
    ("DELETE", "/api/trading/kill-switch?reason=x"),
]


async def test_every_route_needs_a_token(live_api: LiveApi) -> None:
    anon = live_api.client()
    for method, path in [*READS, *CONTROLS, ("GET", "/api/bot/config")]:
        response = await anon.request(method, path)
        assert response.status_code == 401, (path, response.text)
        assert response.headers.get("www-authenticate", "").lower().startswith("bearer"), path


async def test_a_viewer_reads_everything(live_api: LiveApi) -> None:
    viewer = live_api.client("viewer")
    for method, path in READS:
        response = await viewer.request(method, path)
        assert response.status_code == 200, (path, response.text)


async def test_a_viewer_cannot_control_and_only_an_admin_reads_the_config(live_api: LiveApi) -> None:
    viewer, trader, admin = live_api.client("viewer"), live_api.client("trader"), live_api.client("admin")
    for method, path in CONTROLS:
        response = await viewer.request(method, path, json={"reason": "x"})
        assert response.status_code == 403, (path, response.text)
        assert "trader" in response.json()["detail"]
    assert (await trader.get("/api/bot/config")).status_code == 403
    config = (await admin.get("/api/bot/config")).json()
    assert config["api"]["APP_PASSWORD"] == "set (hidden)"
    assert config["api"]["SECRET_KEY"] == "set (hidden)"
    assert config["exchange"]["BYBIT_API_SECRET"] == "set (hidden)"


async def test_bad_input_is_422_and_unknown_names_404(live_api: LiveApi) -> None:
    viewer, trader = live_api.client("viewer"), live_api.client("trader")
    for path in (
        "/api/data/orderbook/BTCUSDT?depth=0",
        "/api/data/orderbook/BTCUSDT?depth=abc",
        "/api/trading/orders?page=0",
        "/api/trading/orders?page_size=100000",
        "/api/trading/orders?sort=password",
        "/api/trading/orders?status=Bogus",
        "/api/trading/orders?side=UP",
        "/api/trading/signals?limit=-1",
        "/api/trading/signals?symbol=btc",
        "/api/market/klines/BTCUSDT?interval=7",
    ):
        response = await viewer.get(path)
        assert response.status_code == 422, (path, response.text)
    response = await trader.post("/api/trading/kill-switch", json={"reason": ""})
    assert response.status_code == 422
    response = await viewer.get("/api/data/orderbook/DOGEUSDT")
    assert response.status_code == 404 and "BTCUSDT" in response.json()["detail"]
    response = await viewer.get("/api/trading/orders/no-such-order")
    assert response.status_code == 404 and "no-such-order" in response.json()["detail"]


async def test_market_data_is_live(live_api: LiveApi) -> None:
    viewer = live_api.client("viewer")
    pairs = (await viewer.get("/api/data/pairs")).json()
    assert [p["symbol"] for p in pairs] == ["BTCUSDT", "ETHUSDT"]
    assert all(p["book_valid"] and p["mid"] > 0 for p in pairs)
    book = (await viewer.get("/api/data/orderbook/BTCUSDT?depth=5")).json()
    assert len(book["bids"]) == 5 and len(book["asks"]) == 5 and book["valid"]
    assert book["bids"][0][0] < book["asks"][0][0]
    assert [b[0] for b in book["bids"]] == sorted((b[0] for b in book["bids"]), reverse=True)
    first = (await viewer.get("/api/data/metrics/BTCUSDT")).json()
    await asyncio.sleep(2.5)
    second = (await viewer.get("/api/data/metrics/BTCUSDT")).json()
    assert second["ts"] > first["ts"] and second["spread_bps"] >= 0
    candles = (await viewer.get("/api/market/klines/BTCUSDT?interval=5&limit=10")).json()
    assert 1 <= len(candles) <= 10
    assert [c["ts"] for c in candles] == sorted(c["ts"] for c in candles)
    assert all(c["low"] <= c["open"] <= c["high"] and c["low"] <= c["close"] <= c["high"] for c in candles)


async def test_status_health_ready_and_metrics(live_api: LiveApi) -> None:
    anon, viewer = live_api.client(), live_api.client("viewer")
    assert (await anon.get("/health")).json()["status"] == "ok"
    ready = await anon.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["model"]["ok"] and ready.json()["checks"]["private_stream"]["ok"]
    metrics = await anon.get("/metrics")
    assert metrics.status_code == 200 and "depthcharge_" in metrics.text
    status = (await viewer.get("/api/bot/status")).json()
    assert status["state"] == "running" and status["ready"] and status["reconciled"]
    assert status["model_version"] is not None and status["symbols"] == ["BTCUSDT", "ETHUSDT"]


async def test_stop_refuses_entries_until_start_and_both_are_audited(live_api: LiveApi) -> None:
    trader = live_api.client("trader")
    stopped = await trader.post("/api/bot/stop", json={"reason": "lunch"})
    assert stopped.status_code == 200 and stopped.json()["changed"]
    assert stopped.json()["status"]["state"] == "paused"
    assert (await trader.post("/api/bot/stop")).json()["changed"] is False
    with pytest.raises(AssertionError, match="accepted"):
        await live_api.resting_order()  # refused while stopped
    started = await trader.post("/api/bot/start", json={"reason": "back"})
    assert started.json()["changed"] and started.json()["status"]["state"] == "running"
    rows = await AuditRepository(live_api.ctx.pool).recent(limit=200)
    actions = [(r.action, r.actor) for r in rows]
    assert (AuditAction.BOT_STOP, "user:trader") in actions and (
        AuditAction.BOT_START,
        "user:trader",
    ) in actions


async def test_an_order_closed_through_the_api_is_cancelled_on_the_exchange(live_api: LiveApi) -> None:
    trader, viewer = live_api.client("trader"), live_api.client("viewer")
    coid = await live_api.resting_order()
    response = await viewer.get("/api/trading/orders", params={"active": "true", "symbol": "BTCUSDT"})
    assert response.status_code == 200, response.text
    listed = response.json()
    assert coid in [o["client_order_id"] for o in listed["items"]] and listed["stats"]["active"] >= 1
    detail = (await viewer.get(f"/api/trading/orders/{coid}")).json()
    assert detail["order"]["status"] == "Placed" and detail["order"]["strategy"] == "test"
    assert detail["mark_price"] > 0 and detail["live_pnl"] is None  # nothing filled yet
    closed = await trader.post(f"/api/trading/orders/{coid}/close", json={"reason": "test close"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "Cancelled" and "confirmed" in closed.json()["message"]
    assert live_api.ctx.execution is not None
    on_exchange = await live_api.ctx.execution.rest.find_order("BTCUSDT", order_link_id=coid)
    assert on_exchange is not None and str(on_exchange.status) == "Cancelled"
    again = await trader.post(f"/api/trading/orders/{coid}/close")
    assert again.status_code == 409 and "Cancelled" in again.json()["detail"]
    rows = await AuditRepository(live_api.ctx.pool).by_entity("Order", coid)
    assert any(r.action is AuditAction.ORDER_CANCEL and r.actor == "user:trader" for r in rows)


async def test_orders_page_sort_and_filter(live_api: LiveApi) -> None:
    viewer, trader = live_api.client("viewer"), live_api.client("trader")
    for _ in range(3):  # one at a time: risk allows one entry per symbol
        coid = await live_api.resting_order("ETHUSDT")
        assert (await trader.post(f"/api/trading/orders/{coid}/close")).status_code == 200
    page = (await viewer.get("/api/trading/orders", params={"symbol": "ETHUSDT", "page_size": 2})).json()
    assert len(page["items"]) == 2 and page["total"] >= 3 and page["page_size"] == 2
    second = (
        await viewer.get("/api/trading/orders", params={"symbol": "ETHUSDT", "page_size": 2, "page": 2})
    ).json()
    assert {o["client_order_id"] for o in page["items"]}.isdisjoint(
        o["client_order_id"] for o in second["items"]
    )
    ascending = (await viewer.get("/api/trading/orders", params={"sort": "price", "direction": "asc"})).json()
    prices = [float(o["price"]) for o in ascending["items"] if o["price"] is not None]
    assert prices == sorted(prices)
    cancelled = (await viewer.get("/api/trading/orders", params={"status": ["Cancelled"]})).json()
    assert cancelled["items"] and all(o["status"] == OrderStatus.CANCELLED for o in cancelled["items"])
    assert cancelled["stats"]["cancelled"] == cancelled["total"] >= 3
    none = (await viewer.get("/api/trading/orders", params={"strategy": "no-such-strategy"})).json()
    assert none["total"] == 0 and none["items"] == []


async def test_kill_switch_halts_cancels_and_releases(live_api: LiveApi) -> None:
    trader = live_api.client("trader")
    coid = await live_api.resting_order()
    engaged = await trader.post("/api/trading/kill-switch", json={"reason": "drill"})
    assert engaged.status_code == 200 and coid in engaged.json()["cancelled"]
    assert (await trader.get("/api/bot/status")).json()["state"] == "halted"
    released = await trader.delete("/api/trading/kill-switch", params={"reason": "drill over"})
    assert released.status_code == 200 and not released.json()["engaged"]
    assert (await trader.delete("/api/trading/kill-switch", params={"reason": "again"})).status_code == 409
    rows = await AuditRepository(live_api.ctx.pool).recent(limit=200)
    assert sum(r.action is AuditAction.EMERGENCY_STOP and r.actor == "user:trader" for r in rows) >= 2


async def test_balance_and_positions(live_api: LiveApi) -> None:
    viewer = live_api.client("viewer")
    balance = (await viewer.get("/api/trading/balance")).json()
    assert float(balance["equity"]) > 0 and float(balance["available"]) > 0 and balance["currency"] == "USDT"
    positions = await viewer.get("/api/trading/positions")
    assert positions.status_code == 200 and isinstance(positions.json(), list)
    closing = await live_api.client("trader").post("/api/trading/positions/ETHUSDT/close")
    assert closing.status_code in (200, 409), closing.text  # 409 names the flat position
    if closing.status_code == 409:
        assert "no position" in closing.json()["detail"]


async def test_no_secret_reaches_a_log_line_or_a_response(live_api: LiveApi) -> None:
    """Log in (right and wrong), change a password, read every route as admin: neither the captured log
    lines nor any response body holds a password, the signing key or the exchange's API secret."""
    first, second = "a-first-password-for-carol", "a-brand-new-password-42"
    secrets = {ADMIN_PASSWORD, SECRET_KEY, API_SECRET, PASSWORDS["viewer"], first, second}
    bodies: list[str] = []
    with structlog.testing.capture_logs() as logs:
        anon, admin = live_api.client(), live_api.client("admin")
        created = await admin.post(
            "/api/auth/users", json={"username": "carol", "password": first, "role": "viewer"}
        )
        bodies.append(created.text)
        bodies.append(
            (await anon.post("/api/auth/login", json={"username": "admin", "password": "nope" * 4})).text
        )
        login = await anon.post("/api/auth/login", json={"username": "carol", "password": first})
        bodies.append(login.text)
        token = login.json()["access_token"]
        changed = await anon.post(
            "/api/auth/change-password",
            json={"current_password": first, "new_password": second},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert changed.status_code == 200, changed.text
        bodies.append(changed.text)
        schema = (await admin.get("/openapi.json")).json()
        for path, methods in schema["paths"].items():
            if "get" in methods and "{" not in path:
                bodies.append((await admin.get(path)).text)
        await asyncio.sleep(1)  # the daemon keeps signing private requests meanwhile
    lines = [json.dumps(entry, default=str) for entry in logs]
    assert len(bodies) >= 25 and lines
    for secret in secrets:
        assert not [b for b in bodies if secret in b], f"a response holds {secret[:3]}…"
        assert not [line for line in lines if secret in line], f"a log line holds {secret[:3]}…"


async def test_the_websocket_pushes_orders_in_order(live_api: LiveApi) -> None:
    url = live_api.url.replace("http://", "ws://") + "/ws"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"op": "auth", "token": live_api.token("viewer")}))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["topic"] == "hello" and hello["data"]["username"] == "viewer"
        await ws.send(json.dumps({"op": "subscribe", "topics": ["order", "book"]}))
        coid = await live_api.resting_order("ETHUSDT")
        assert (await live_api.client("trader").post(f"/api/trading/orders/{coid}/close")).status_code == 200
        seqs: list[int] = []
        statuses: list[str] = []
        books = 0
        async with asyncio.timeout(20):
            while "Cancelled" not in statuses or books < 2:
                message = json.loads(await ws.recv())
                if "seq" in message and not message.get("snapshot"):
                    seqs.append(message["seq"])
                if message["topic"] == "order" and message["data"]["client_order_id"] == coid:
                    statuses.append(message["data"]["status"])
                books += message["topic"] == "book"
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert statuses[-1] == "Cancelled" and statuses.index("Cancelled") == len(statuses) - 1
