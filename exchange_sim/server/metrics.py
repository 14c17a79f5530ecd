"""Prometheus metrics of the paper exchange, served at ``GET /sim/metrics``.

Each server owns its registry (nothing goes to prometheus-client's global one), so several servers in
one process (tests) never collide. The gauges are read from the venue when scraped.
"""

from __future__ import annotations

import math

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge
from prometheus_client.exposition import generate_latest

from exchange_sim.venue import Venue

__all__ = ["CONTENT_TYPE_LATEST", "SimMetrics"]


class SimMetrics:
    """The exchange clock's requested and achieved speed, its lag and slip, and exchange time."""

    def __init__(self, venue: Venue, namespace: str = "exchange_sim") -> None:
        self.registry = CollectorRegistry()
        clock, ns, reg = venue.clock, namespace, self.registry

        def achieved() -> float:
            speed = clock.achieved_speed()
            return math.nan if speed is None else speed

        Gauge(
            "speed_requested",
            "Requested exchange-clock speed (exchange ms per wall ms).",
            namespace=ns,
            registry=reg,
        ).set_function(lambda: clock.speed)
        Gauge(
            "speed_achieved",
            "Achieved exchange-clock speed over the last seconds (NaN until measured); below the request "
            "when the process cannot keep up.",
            namespace=ns,
            registry=reg,
        ).set_function(achieved)
        Gauge(
            "clock_lag_ms",
            "How far exchange time trails the requested time (exchange ms).",
            namespace=ns,
            registry=reg,
        ).set_function(lambda: clock.lag_ms())
        Gauge(
            "clock_slipped_ms",
            "Requested exchange time given up because the process could not keep the speed (ms, total).",
            namespace=ns,
            registry=reg,
        ).set_function(lambda: clock.slipped_ms)
        Gauge(
            "exchange_time_ms", "Current exchange time (ms since the epoch).", namespace=ns, registry=reg
        ).set_function(lambda: clock.now())

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
