"""Observability of the trading daemon: JSON logs with trace context, operation tracing, Prometheus metrics."""
