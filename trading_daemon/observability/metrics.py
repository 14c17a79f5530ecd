"""Prometheus metrics of the daemon, in a registry owned by one `DaemonMetrics` object.

Nothing registers in prometheus-client's global default registry: the daemon creates one
`DaemonMetrics` and serves `render()` from its API, and each test creates its own, so series never
leak between tests or collide on re-registration.

The resilience package does not import this module; the daemon wires `breaker_state_changed` and
`observe_rate_limit` in as the breakers' and the rate limiter's listeners.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from ml.features.finite import NON_FINITE_REPLACED

__all__ = ["BREAKER_STATE_VALUES", "CONTENT_TYPE_LATEST", "DaemonMetrics", "render_metrics"]

# Gauge values of circuit_breaker_state; ordered by severity so `max()` over breakers is meaningful.
BREAKER_STATE_VALUES: dict[str, float] = {"closed": 0.0, "half_open": 1.0, "open": 2.0}

_WAIT_BUCKETS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_INFERENCE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class DaemonMetrics:
    """The daemon's counters and gauges, registered in `registry` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, namespace: str = "depthcharge") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        ns, reg = namespace, self.registry
        self.market_messages = Counter(
            "market_messages",
            "Market-data messages received, by topic.",
            ["topic"],
            namespace=ns,
            registry=reg,
        )
        self.book_resyncs = Counter(
            "book_resyncs",
            "Order-book resynchronisations (gap, crossed book).",
            ["symbol"],
            namespace=ns,
            registry=reg,
        )
        self.market_messages_invalid = Counter(
            "market_messages_invalid",
            "Market-data messages dropped as invalid (nothing of them applied), by topic kind and reason.",
            ["topic", "reason"],
            namespace=ns,
            registry=reg,
        )
        self.snapshot_rows_degraded = Counter(
            "snapshot_rows_degraded",
            "Raw snapshot rows that could not be built and were emitted as an invalid book's (book resynced).",
            ["symbol"],
            namespace=ns,
            registry=reg,
        )
        self.market_feed_timer_errors = Counter(
            "market_feed_timer_errors",
            "Errors caught in the market feed's grace timer (the timer keeps running).",
            namespace=ns,
            registry=reg,
        )
        self.market_sink_errors = Counter(
            "market_sink_errors",
            "Errors raised by a market sink (the other sinks and the feed carry on), by sink and output kind.",
            ["sink", "kind"],
            namespace=ns,
            registry=reg,
        )
        self.ws_frames_dropped = Counter(
            "ws_frames_dropped",
            "WebSocket frames dropped without reaching a handler, by reason.",
            ["reason"],
            namespace=ns,
            registry=reg,
        )
        self.live_feature_errors = Counter(
            "live_feature_errors",
            "Rows or candles the live feature engine could not take (the row's window run is broken).",
            ["symbol", "kind"],
            namespace=ns,
            registry=reg,
        )
        # Read at scrape time from the feature code's own process-wide counter (docs/features.md §1.5).
        reg.register(NonFiniteFeatureCollector(ns))
        self.candle_backfills = Counter(
            "candle_backfills",
            "Candle back-fills over REST, by symbol and outcome (filled, hole, failed).",
            ["symbol", "outcome"],
            namespace=ns,
            registry=reg,
        )
        self.exchange_clock_offset_ms = Gauge(
            "exchange_clock_offset_ms",
            "Exchange clock minus local clock, as last measured (ms).",
            namespace=ns,
            registry=reg,
        )
        self.ws_reconnects = Counter(
            "ws_reconnects", "WebSocket reconnections, by stream.", ["stream"], namespace=ns, registry=reg
        )
        self.circuit_breaker_state = Gauge(
            "circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ["breaker"],
            namespace=ns,
            registry=reg,
        )
        self.circuit_breaker_transitions = Counter(
            "circuit_breaker_transitions",
            "Circuit breaker state changes, by breaker and new state.",
            ["breaker", "state"],
            namespace=ns,
            registry=reg,
        )
        self.rate_limiter_tokens = Gauge(
            "rate_limiter_tokens",
            "Tokens left in a rate-limit bucket.",
            ["bucket"],
            namespace=ns,
            registry=reg,
        )
        self.rate_limiter_wait_seconds = Histogram(
            "rate_limiter_wait_seconds",
            "Time spent waiting for rate-limit tokens.",
            ["bucket"],
            namespace=ns,
            registry=reg,
            buckets=_WAIT_BUCKETS,
        )
        self.rate_limiter_rejections = Counter(
            "rate_limiter_rejections",
            "Acquisitions refused because the wait would exceed max_wait.",
            ["bucket"],
            namespace=ns,
            registry=reg,
        )
        self.recorder_lag_seconds = Gauge(
            "recorder_lag_seconds",
            "Age of the oldest row not yet written to the database.",
            namespace=ns,
            registry=reg,
        )
        self.recorder_spool_rows = Gauge(
            "recorder_spool_rows", "Rows waiting in the local spool.", namespace=ns, registry=reg
        )
        self.recorder_spool_bytes = Gauge(
            "recorder_spool_bytes", "Size of the local spool files.", namespace=ns, registry=reg
        )
        self.rows_recorded = Counter(
            "rows_recorded", "Rows written to the database, by table.", ["table"], namespace=ns, registry=reg
        )
        # -- decisions: the ML gate, risk, the decision engine (issue 12) --
        self.ml_row_fallbacks = Counter(
            "ml_row_fallbacks",
            "Rows without a production-model view, by reason (no_model, stale_model, no_window, inference_*).",
            ["reason"],
            namespace=ns,
            registry=reg,
        )
        self.ml_inference_seconds = Histogram(
            "ml_inference_seconds",
            "Model inference time per row as the decision engine waits for it (queueing included), by role.",
            ["role"],
            namespace=ns,
            registry=reg,
            buckets=_INFERENCE_BUCKETS,
        )
        self.ml_validations = Counter(
            "ml_validations",
            "Consensus signals validated by the ML gate, by verdict (agree, disagree, neutral, fallback).",
            ["verdict"],
            namespace=ns,
            registry=reg,
        )
        self.ml_agreement_rate = Gauge(
            "ml_agreement_rate",
            "Share of the recent validations with a model view in which the model agreed with the consensus.",
            namespace=ns,
            registry=reg,
        )
        self.ml_fallback_rate = Gauge(
            "ml_fallback_rate",
            "Share of the recent validations decided by the consensus alone (no usable model view).",
            namespace=ns,
            registry=reg,
        )
        self.ml_model_loads = Counter(
            "ml_model_loads",
            "Model versions the gate loaded or refused, by role (production, shadow) and outcome.",
            ["role", "outcome"],
            namespace=ns,
            registry=reg,
        )
        self.ml_model_info = Gauge(
            "ml_model_info",
            "The served model versions (value: the version's training time, Unix seconds), by role.",
            ["role", "version"],
            namespace=ns,
            registry=reg,
        )
        self.risk_rejections = Counter(
            "risk_rejections",
            "Intents refused by the risk manager, by the rule that refused them.",
            ["rule"],
            namespace=ns,
            registry=reg,
        )
        self.entries_halted = Gauge(
            "entries_halted",
            "1 while new entries in the symbol are halted by a health or loss rule, else 0.",
            ["symbol"],
            namespace=ns,
            registry=reg,
        )
        self.decisions = Counter(
            "decisions",
            "Rows decided, by what became of them (no_signal, blocked, vetoed, not_traded, sent, refused, ...).",
            ["outcome"],
            namespace=ns,
            registry=reg,
        )
        self.decision_latency_seconds = Histogram(
            "decision_latency_seconds",
            "From a row's arrival to its signal (features, model, strategies, risk) and to the submitted order.",
            ["stage"],
            namespace=ns,
            registry=reg,
            buckets=_INFERENCE_BUCKETS,
        )
        # strategies (trading_daemon.strategies)
        self.strategy_signals = Counter(
            "strategy_signals",
            "New strategy and consensus signals, by strategy, action and outcome (sent, below_cost).",
            ["strategy", "action", "outcome"],
            namespace=ns,
            registry=reg,
        )
        self.strategy_errors = Counter(
            "strategy_errors",
            "Rows on which a strategy raised (it is left out of that row's consensus).",
            ["strategy"],
            namespace=ns,
            registry=reg,
        )
        self.consensus_evaluations = Counter(
            "consensus_evaluations",
            "Rows evaluated by the strategy manager, by outcome (signal, below_cost, none, no_votes).",
            ["outcome"],
            namespace=ns,
            registry=reg,
        )
        # detection (trading_daemon.detection)
        self.detections = Counter(
            "detections",
            "Detections by symbol and kind (spoofing, layering, breakout); a repeated spoof extends one.",
            ["symbol", "kind"],
            namespace=ns,
            registry=reg,
        )
        self.detector_errors = Counter(
            "detector_errors",
            "Inputs a detector failed on (logged; detection carries on with the next message).",
            ["symbol"],
            namespace=ns,
            registry=reg,
        )

    def record_market_message(self, topic: str) -> None:
        """Count one market-data message of `topic` (e.g. `orderbook.50.BTCUSDT`)."""
        self.market_messages.labels(topic=topic).inc()

    def ws_frame_dropped(self, reason: str, topic: str) -> None:
        """WebSocket listener: count a frame dropped unrouted (the topic, which a venue chooses, is no label)."""
        self.ws_frames_dropped.labels(reason=reason).inc()

    def breaker_state_changed(self, breaker: str, old_state: str, new_state: str) -> None:
        """Circuit-breaker listener: set the state gauge and count the transition."""
        self.circuit_breaker_state.labels(breaker=breaker).set(BREAKER_STATE_VALUES[str(new_state)])
        self.circuit_breaker_transitions.labels(breaker=breaker, state=str(new_state)).inc()

    def observe_rate_limit(self, bucket: str, tokens_left: float, waited: float, allowed: bool) -> None:
        """Rate-limiter listener: tokens left after an acquisition, its wait, or a rejection."""
        self.rate_limiter_tokens.labels(bucket=bucket).set(tokens_left)
        if allowed:
            self.rate_limiter_wait_seconds.labels(bucket=bucket).observe(waited)
        else:
            self.rate_limiter_rejections.labels(bucket=bucket).inc()

    def set_recorder_state(self, *, lag_seconds: float, spool_rows: int, spool_bytes: int) -> None:
        """Publish the recorder's lag and spool size."""
        self.recorder_lag_seconds.set(lag_seconds)
        self.recorder_spool_rows.set(spool_rows)
        self.recorder_spool_bytes.set(spool_bytes)

    def render(self) -> str:
        """The Prometheus text exposition of every metric in this registry."""
        return render_metrics(self.registry)


class NonFiniteFeatureCollector(Collector):
    """`feature_values_replaced_total{feature}`: non-finite feature results replaced by their default."""

    def __init__(self, namespace: str) -> None:
        self.name = f"{namespace}_feature_values_replaced"

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            self.name,
            "Feature values that came out NaN or infinite and were replaced by the feature's default.",
            labels=["feature"],
        )
        for feature, count in sorted(NON_FINITE_REPLACED.items()):
            family.add_metric([feature], float(count))
        yield family


def render_metrics(registry: CollectorRegistry) -> str:
    """The Prometheus text exposition (content type `CONTENT_TYPE_LATEST`) of `registry`."""
    return generate_latest(registry).decode("utf-8")
