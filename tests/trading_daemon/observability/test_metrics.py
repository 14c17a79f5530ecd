from __future__ import annotations

from prometheus_client import REGISTRY

from trading_daemon.observability.metrics import DaemonMetrics


def test_series_appear_in_exposition() -> None:
    m = DaemonMetrics()
    m.record_market_message("orderbook.50.BTCUSDT")
    m.record_market_message("orderbook.50.BTCUSDT")
    m.book_resyncs.labels(symbol="BTCUSDT").inc()
    m.ws_reconnects.labels(stream="public").inc()
    m.breaker_state_changed("bybit_api", "closed", "open")
    m.observe_rate_limit("rest_trade", 99.0, 0.0, True)
    m.observe_rate_limit("rest_trade", 0.0, 0.0, False)
    m.set_recorder_state(lag_seconds=1.5, spool_rows=10, spool_bytes=2048)
    m.rows_recorded.labels(table="market_snapshots").inc(5)
    text = m.render()
    for series in (
        'depthcharge_market_messages_total{topic="orderbook.50.BTCUSDT"} 2.0',
        'depthcharge_book_resyncs_total{symbol="BTCUSDT"} 1.0',
        'depthcharge_ws_reconnects_total{stream="public"} 1.0',
        'depthcharge_circuit_breaker_state{breaker="bybit_api"} 2.0',
        'depthcharge_circuit_breaker_transitions_total{breaker="bybit_api",state="open"} 1.0',
        'depthcharge_rate_limiter_tokens{bucket="rest_trade"} 0.0',
        'depthcharge_rate_limiter_wait_seconds_count{bucket="rest_trade"} 1.0',
        'depthcharge_rate_limiter_rejections_total{bucket="rest_trade"} 1.0',
        "depthcharge_recorder_lag_seconds 1.5",
        "depthcharge_recorder_spool_rows 10.0",
        "depthcharge_recorder_spool_bytes 2048.0",
        'depthcharge_rows_recorded_total{table="market_snapshots"} 5.0',
    ):
        assert series in text, series


def test_registries_are_independent() -> None:
    a, b = DaemonMetrics(), DaemonMetrics()
    a.record_market_message("publicTrade.BTCUSDT")
    assert "publicTrade" in a.render() and "publicTrade" not in b.render()
    assert (
        REGISTRY.get_sample_value("depthcharge_market_messages_total", {"topic": "publicTrade.BTCUSDT"})
        is None
    )


def test_non_finite_feature_replacements_are_exported() -> None:
    import numpy as np

    from ml.features.finite import NON_FINITE_REPLACED, replace_non_finite
    from schemas.features import FEATURE_NAMES

    m = DaemonMetrics()
    before = NON_FINITE_REPLACED[FEATURE_NAMES[3]]
    replace_non_finite(np.array([1.0, np.nan]), np.array([0.0, 0.0]), first_index=2)
    expected = f'depthcharge_feature_values_replaced_total{{feature="{FEATURE_NAMES[3]}"}} {before + 1:.1f}'
    assert expected in m.render()
