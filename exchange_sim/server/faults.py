"""Fault injection: what :class:`~exchange_sim.config.FaultConfig` describes, decided per event.

One seeded random stream decides every fault, so a test can set a rate to 0 or 1 and get a certain
outcome, and intermediate rates are reproducible for a given seed and event order. The configuration
is mutable at run time through the admin API (:meth:`FaultInjector.update`). Scripted request faults
(:class:`~exchange_sim.config.RequestFault`: a lost reply, a lost request, a late request) are counted
down per matching request, so "the next create loses its reply" happens exactly once.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from typing import Any

from exchange_sim.config import REQUEST_FAULT_MODES, FaultConfig, RequestFault

_RATES = (
    "error_rate",
    "timeout_rate",
    "ws_disconnect_rate",
    "delta_drop_rate",
    "delta_duplicate_rate",
    "book_reset_rate",
)
_DURATIONS = ("latency_ms", "timeout_ms", "order_ack_delay_ms")
_ERROR_KINDS = ("http", "retcode", "ratelimit")


class FaultInjector:
    """Rolls the dice for each configured fault."""

    def __init__(self, config: FaultConfig | None = None, seed: int = 0) -> None:
        # Deep copies: request faults count down in place, the start configuration must not.
        self.initial = copy.deepcopy(config) if config is not None else FaultConfig()
        self.config = copy.deepcopy(self.initial)
        self.rng = random.Random(seed)

    def as_dict(self) -> dict[str, Any]:
        """The current configuration as JSON-ready values."""
        out = dataclasses.asdict(self.config)
        out["error_kinds"] = list(self.config.error_kinds)
        out["paths"] = list(self.config.paths)
        out["request_faults"] = [dataclasses.asdict(f) for f in self.config.request_faults]
        return out

    def reset(self) -> None:
        """Back to the configuration given at start."""
        self.config = copy.deepcopy(self.initial)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply ``changes``; raises ``ValueError`` naming the first bad field (nothing is applied then)."""
        new = dataclasses.replace(self.config)
        for name, value in changes.items():
            if name in _RATES:
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                    raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
                setattr(new, name, float(value))
            elif name in _DURATIONS:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{name} must be a non-negative integer (ms), got {value!r}")
                setattr(new, name, value)
            elif name == "error_kinds":
                if not isinstance(value, list) or not value or any(v not in _ERROR_KINDS for v in value):
                    raise ValueError(f"error_kinds must be a non-empty list of {_ERROR_KINDS}, got {value!r}")
                new.error_kinds = tuple(value)
            elif name == "paths":
                if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
                    raise ValueError(f"paths must be a list of path prefixes, got {value!r}")
                new.paths = tuple(value)
            elif name == "request_faults":
                if not isinstance(value, list):
                    raise ValueError(f"request_faults must be a list of objects, got {value!r}")
                new.request_faults = tuple(_request_fault(i, item) for i, item in enumerate(value))
            else:
                raise ValueError(f"unknown fault {name!r}; known: {sorted(dataclasses.asdict(new))}")
        self.config = new

    def request_fault(self, path: str) -> RequestFault | None:
        """The scripted fault this request to ``path`` gets, if any (counted down: each fires ``count`` times)."""
        for rule in self.config.request_faults:
            if rule.count <= 0 or not path.startswith(rule.path):
                continue
            if rule.skip > 0:
                rule.skip -= 1
                return None
            if rule.rate < 1 and self.rng.random() >= rule.rate:
                return None
            rule.count -= 1
            return dataclasses.replace(rule)
        return None

    def applies(self, path: str) -> bool:
        """Whether REST faults apply to ``path``."""
        paths = self.config.paths
        return not paths or any(path.startswith(p) for p in paths)

    def _hit(self, rate: float) -> bool:
        return rate > 0 and (rate >= 1 or self.rng.random() < rate)

    def error(self) -> str | None:
        """``"http"`` (HTTP 503), ``"retcode"`` (10016), ``"ratelimit"`` (10006 with headers) or ``None``."""
        if not self._hit(self.config.error_rate):
            return None
        return self.rng.choice(self.config.error_kinds)

    def timeout(self) -> bool:
        """Whether to withhold this reply."""
        return self._hit(self.config.timeout_rate)

    def drop_delta(self) -> bool:
        """Whether to drop this orderbook delta for one connection."""
        return self._hit(self.config.delta_drop_rate)

    def duplicate_delta(self) -> bool:
        """Whether to send this orderbook delta twice to one connection."""
        return self._hit(self.config.delta_duplicate_rate)

    def book_reset(self) -> bool:
        """Whether a depth topic restarts at ``u`` = 1 at this push."""
        return self._hit(self.config.book_reset_rate)

    def ws_disconnect(self, seconds: float) -> bool:
        """Whether to cut a connection that lived ``seconds`` since the last roll."""
        rate = self.config.ws_disconnect_rate
        if rate <= 0:
            return False
        return self._hit(1 - (1 - rate) ** seconds if rate < 1 else 1.0)


def _request_fault(index: int, item: object) -> RequestFault:
    """One ``request_faults`` entry from JSON; raises ``ValueError`` naming the entry and field."""
    where = f"request_faults[{index}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be an object, got {item!r}")
    fields = {f.name for f in dataclasses.fields(RequestFault)}
    unknown = sorted(set(item) - fields)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(fields)}")
    path, mode = item.get("path"), item.get("mode")
    if not isinstance(path, str) or not path.startswith("/v5/"):
        raise ValueError(f"{where}.path must be a /v5/ path prefix, got {path!r}")
    if mode not in REQUEST_FAULT_MODES:
        raise ValueError(f"{where}.mode must be one of {REQUEST_FAULT_MODES}, got {mode!r}")
    numbers: dict[str, int] = {}
    for name, default in (("count", 1), ("skip", 0), ("hold_ms", 0), ("delay_ms", 0)):
        value = item.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{where}.{name} must be a non-negative integer, got {value!r}")
        numbers[name] = value
    rate = item.get("rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise ValueError(f"{where}.rate must be a number in [0, 1], got {rate!r}")
    if mode == "late_request" and numbers["delay_ms"] <= 0:
        raise ValueError(f"{where}: a late_request needs delay_ms > 0")
    return RequestFault(path=path, mode=mode, rate=float(rate), **numbers)
