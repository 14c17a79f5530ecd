"""The detection, strategies and monitoring routes: their mapping of the real components (no daemon), then every
route against a running daemon on the paper exchange (`live_api`, slow)."""

from __future__ import annotations

import json

import pytest

from infra.db.repositories import ReconciliationRun
from infra.db.repositories.audit import AuditRepository
from infra.settings import code_defaults
from schemas.enums import AuditAction
from testkit.rows import T0_MS
from testkit.strategies import strategy_config
from tests.trading_daemon.api.conftest import LiveApi
from trading_daemon.api.routes.detection import detection_status
from trading_daemon.api.routes.monitoring import (
    breaker_out,
    limiter_out,
    recovery_settings,
    run_out,
    summary_out,
)
from trading_daemon.api.routes.strategies import strategies_out, strategy_out
from trading_daemon.detection.service import DetectionService
from trading_daemon.execution.reconciliation import ReconciliationReport
from trading_daemon.resilience.circuit_breaker import BreakerConfig, CircuitBreaker
from trading_daemon.resilience.rate_limiter import BucketSpec, RateLimiter
from trading_daemon.strategies.manager import StrategyManager

# ---- mapping --------------------------------------------------------------------------------------------


def test_detection_status_lists_every_symbol() -> None:
    service = DetectionService(code_defaults().detection, ["BTCUSDT", "ETHUSDT"])
    out = detection_status(service.status())
    assert [s.symbol for s in out.symbols] == ["BTCUSDT", "ETHUSDT"]
    assert out.store is None and out.active_manipulations == 0 and out.symbols[0].blocked_by is None


def test_strategy_status_sends_money_as_strings() -> None:
    manager = StrategyManager(strategy_config())
    manager.disable("momentum")
    out = strategies_out(manager.status())
    assert {s.name for s in out.strategies} == set(manager.strategies)
    assert strategy_out(manager.status(), "momentum").enabled is False
    assert out.consensus.strategy == "consensus" and out.consensus_rate is None
    sent = json.loads(out.model_dump_json())
    assert sent["consensus"]["net_pnl"] == "0" and sent["strategies"][0]["statistics"]["fees"] == "0"


def test_reconciliation_summaries_and_runs() -> None:
    report = ReconciliationReport(trigger="demand", started_ms=T0_MS, finished_ms=T0_MS + 40, success=True,
                                  attempts=1, fills_imported=2, wallet_equity="1000.50")  # fmt: skip
    summary = summary_out(report.summary())
    assert summary.discrepancies == 2 and str(summary.wallet_equity) == "1000.50"
    assert '"wallet_equity":"1000.50"' in summary.model_dump_json()
    run = ReconciliationRun(account="a", trigger="start", started_ms=T0_MS, finished_ms=T0_MS + 1, success=False,
                            attempts=3, summary={}, error="exchange down", id=4)  # fmt: skip
    out = run_out(run)  # an old row without a summary still says what it was
    assert out.summary is not None and out.summary.trigger == "start" and out.error == "exchange down"
    settings = recovery_settings(code_defaults().execution)
    assert settings.reconcile_interval_s == code_defaults().execution.reconcile_interval_s


async def test_breaker_status_and_a_refill_that_keeps_the_exchanges_block() -> None:
    breaker = CircuitBreaker("rest", BreakerConfig(failure_threshold=1, cooldown_seconds=60))
    with pytest.raises(OSError):
        breaker.call(_fail)
    out = breaker_out(breaker.get_status())
    assert out.state == "open" and out.failure_count == 1 and out.last_failure == "OSError: down"
    clock = [100.0]
    limiter = RateLimiter({"b": BucketSpec(capacity=10, window_seconds=10)}, clock=lambda: clock[0])
    assert await limiter.acquire("b", 10, max_wait=0)
    limiter.on_rate_limit_error("b")  # the exchange's 10006: blocked for the fallback back-off
    limiter.reset("b")
    status = limiter_out("b", limiter.get_status("b"))
    assert status.tokens == 10 and status.blocked_for > 0 and status.bucket == "b"


def _fail() -> None:
    raise OSError("down")


# ---- against a running daemon -----------------------------------------------------------------------------

READS = [
    "/api/detection/status", "/api/detection/levels/BTCUSDT", "/api/detection/detections/ETHUSDT",
    "/api/strategies", "/api/strategies/statistics", "/api/monitoring/recovery/status",
    "/api/monitoring/circuit-breakers", "/api/monitoring/rate-limiters",
]  # fmt: skip
CONTROLS = [  # admin only
    "/api/strategies/imbalance/enable", "/api/strategies/imbalance/disable", "/api/monitoring/recovery/trigger",
    "/api/monitoring/circuit-breakers/rest/reset", "/api/monitoring/rate-limiters/rest_public/reset",
]  # fmt: skip


async def _audited(live_api: LiveApi, action: AuditAction, entity_type: str) -> list[tuple[str, str, object]]:
    rows = await AuditRepository(live_api.ctx.pool).find(action=action, entity_type=entity_type, limit=50)
    return [(r.actor, r.entity_id, r.new_value) for r in rows]


@pytest.mark.slow
async def test_reads_need_a_token_and_controls_an_admin(live_api: LiveApi) -> None:
    anon, viewer, trader = live_api.client(), live_api.client("viewer"), live_api.client("trader")
    for path in READS:
        assert (await anon.get(path)).status_code == 401, path
        response = await viewer.get(path)
        assert response.status_code == 200, (path, response.text)
    for path in CONTROLS:
        assert (await anon.post(path)).status_code == 401, path
        for client in (viewer, trader):
            response = await client.post(path)
            assert response.status_code == 403 and "admin" in response.json()["detail"], (path, response.text)


@pytest.mark.slow
async def test_bad_input_is_422_and_unknown_names_404(live_api: LiveApi) -> None:
    viewer, admin = live_api.client("viewer"), live_api.client("admin")
    for path in (
        "/api/detection/detections/BTCUSDT?kind=bogus", "/api/detection/detections/BTCUSDT?limit=0",
        f"/api/detection/levels/{'X' * 31}", "/api/monitoring/recovery/status?runs=0",
        "/api/monitoring/recovery/status?runs=abc",
    ):  # fmt: skip
        response = await viewer.get(path)
        assert response.status_code == 422, (path, response.text)
    for path, named in (
        ("/api/detection/levels/DOGEUSDT", "BTCUSDT"),
        ("/api/detection/detections/DOGEUSDT", "ETHUSDT"),
    ):
        response = await viewer.get(path)
        assert response.status_code == 404 and named in response.json()["detail"], path
    for path, named in (
        ("/api/strategies/nope/enable", "imbalance"), ("/api/monitoring/circuit-breakers/nope/reset", "nope"),
        ("/api/monitoring/rate-limiters/nope/reset", "rest_public"),
    ):  # fmt: skip
        response = await admin.post(path)
        assert response.status_code == 404 and named in response.json()["detail"], (path, response.text)


@pytest.mark.slow
async def test_detection_status_levels_and_detections(live_api: LiveApi) -> None:
    viewer = live_api.client("viewer")
    status = (await viewer.get("/api/detection/status")).json()
    assert [s["symbol"] for s in status["symbols"]] == ["BTCUSDT", "ETHUSDT"] and status["store"] is not None
    levels = (await viewer.get("/api/detection/levels/BTCUSDT")).json()
    assert levels["symbol"] == "BTCUSDT" and isinstance(levels["levels"], list)
    found = (
        await viewer.get("/api/detection/detections/BTCUSDT", params={"kind": "spoofing", "limit": 5})
    ).json()
    assert found["kind"] == "spoofing" and all(d["kind"] == "spoofing" for d in found["detections"])


@pytest.mark.slow
async def test_strategies_enable_and_disable_are_audited(live_api: LiveApi) -> None:
    viewer, admin = live_api.client("viewer"), live_api.client("admin")
    listed = (await viewer.get("/api/strategies")).json()
    assert {s["name"] for s in listed["strategies"]} == {
        "imbalance", "momentum", "sar_wave", "supertrend", "volume_profile",
    }  # fmt: skip
    assert isinstance(listed["consensus"]["net_pnl"], str)
    statistics = (await viewer.get("/api/strategies/statistics")).json()
    assert "consensus" in statistics and "imbalance" in statistics
    was = next(s["enabled"] for s in listed["strategies"] if s["name"] == "imbalance")
    disabled = (await admin.post("/api/strategies/imbalance/disable")).json()
    assert disabled["changed"] is was and disabled["strategy"]["enabled"] is False
    assert (await admin.post("/api/strategies/imbalance/disable")).json()["changed"] is False
    enabled = (await admin.post("/api/strategies/imbalance/enable")).json()
    assert enabled["changed"] is True and enabled["strategy"]["enabled"] is True
    decisions = live_api.ctx.decisions
    assert decisions is not None and "imbalance" in decisions.strategies.enabled
    audited = await _audited(live_api, AuditAction.CONFIG_CHANGE, "strategy")
    assert ("user:admin", "imbalance", {"enabled": True}) in audited
    assert ("user:admin", "imbalance", {"enabled": False}) in audited


@pytest.mark.slow
async def test_recovery_status_and_a_pass_on_demand(live_api: LiveApi) -> None:
    viewer, admin = live_api.client("viewer"), live_api.client("admin")
    status = (await viewer.get("/api/monitoring/recovery/status", params={"runs": 3})).json()
    assert status["reconciled"] and not status["running"] and status["last_reconciliation"]["success"]
    assert 1 <= len(status["recent_runs"]) <= 3 and status["settings"]["auto_recovery"] in (True, False)
    assert status["fsm"]["total_order_fsms"] >= 0
    triggered = await admin.post("/api/monitoring/recovery/trigger")
    assert triggered.status_code == 200, triggered.text
    assert triggered.json()["trigger"] == "demand" and triggered.json()["success"]
    after = (await viewer.get("/api/monitoring/recovery/status")).json()
    assert after["recent_runs"][0]["trigger"] == "demand"
    audited = await _audited(live_api, AuditAction.RECONCILIATION, "Recovery")
    assert any(actor == "user:admin" for actor, _, _ in audited)
    execution = live_api.ctx.execution
    assert execution is not None
    async with execution.reconciler._lock:  # a pass in progress
        busy = await admin.post("/api/monitoring/recovery/trigger")
        assert busy.status_code == 409 and "already running" in busy.json()["detail"]
        assert (await viewer.get("/api/monitoring/recovery/status")).json()["running"] is True


@pytest.mark.slow
async def test_breaker_and_limiter_resets_are_audited(live_api: LiveApi) -> None:
    viewer, admin = live_api.client("viewer"), live_api.client("admin")
    breakers = (await viewer.get("/api/monitoring/circuit-breakers")).json()
    assert breakers, "the daemon has called the exchange: its breakers exist"
    name = breakers[0]["name"]
    reset = await admin.post(f"/api/monitoring/circuit-breakers/{name}/reset")
    assert reset.status_code == 200, reset.text
    assert reset.json()["breaker"]["state"] == "closed" and reset.json()["breaker"]["failure_count"] == 0
    assert ("user:admin", name, {"state": "closed", "failure_count": 0}) in await _audited(
        live_api, AuditAction.CONFIG_CHANGE, "circuit_breaker"
    )
    limiters = (await viewer.get("/api/monitoring/rate-limiters")).json()
    assert {"rest_public", "rest_trade"} <= {b["bucket"] for b in limiters}
    assert await live_api.ctx.limiter.acquire("ws_connect", 100, max_wait=0)
    refilled = await admin.post("/api/monitoring/rate-limiters/ws_connect/reset")
    assert refilled.status_code == 200, refilled.text
    body = refilled.json()
    assert body["previous_tokens"] < 401 and body["limiter"]["tokens"] == body["limiter"]["max_tokens"] == 500
    audited = await _audited(live_api, AuditAction.CONFIG_CHANGE, "rate_limiter")
    assert any(actor == "user:admin" and entity == "ws_connect" for actor, entity, _ in audited)
