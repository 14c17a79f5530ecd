"""Resilience of the trading daemon: token-bucket rate limiting and circuit breakers."""
