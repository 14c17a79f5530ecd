"""The soak's fault schedule: which fault, when, for how long — drawn from a seed, so a run can be repeated.

A run of `seconds` is laid out in fractions of its length, so the 60-second version and the 10-minute one
see the same story at different densities:

    0.00  the daemon starts deciding (strategies + ML gate, production model v1)
    0.10  model promotion: v2 becomes production (NOTIFY model_promoted; the daemon hot-swaps)
    0.20  switch: the daemon is stopped (SIGTERM) and restarted trading a scripted intent source
    0.40  database restart: the soak's own server stopped (pg_ctl stop -m fast, every connection cut),
          kept down a few seconds (the recorder spools), started again
    0.60  daemon SIGKILL, restarted at once
    0.90  every fault off; the daemon settles, reconciles, and is stopped at 1.00

Between 0.05 and 0.88 the public/private WebSocket disconnects (about one a minute, at least three) and
windows of dropped order-book deltas (the daemon sees a `u` gap and resyncs) are spread out. REST faults
matter only while the daemon calls REST, which it does mostly while it trades, so they fall between 0.25
and 0.88: windows in which a share of requests fail with HTTP 503 / retCode 10016 ("5xx") or 10006 ("rate
limit"), and one REST outage (every request answered 503 for a few seconds, enough to open a circuit
breaker). The REST windows never overlap, since they share the exchange's error rate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

# Kinds of events; the runner has one handler per kind.
PROMOTE = "model_promotion"
SWITCH = "switch_to_trading"
DB_RESTART = "db_restart"
KILL = "daemon_sigkill"
WS_DISCONNECT = "ws_disconnect"
DELTA_DROP = "delta_drop"
HTTP_5XX = "http_5xx"
RATE_LIMIT = "rate_limit"
REST_OUTAGE = "rest_outage"
QUIET = "faults_off"
KINDS = (
    PROMOTE,
    SWITCH,
    DB_RESTART,
    KILL,
    WS_DISCONNECT,
    DELTA_DROP,
    HTTP_5XX,
    RATE_LIMIT,
    REST_OUTAGE,
    QUIET,
)

MIN_SECONDS = 45.0  # below this the daemon's three start-ups leave no time between the faults

# The fixed story, as fractions of the run.
PROMOTE_AT, SWITCH_AT, DB_RESTART_AT, KILL_AT, QUIET_AT = 0.10, 0.20, 0.40, 0.60, 0.90
FAULTS_FROM, REST_FAULTS_FROM, FAULTS_UNTIL = 0.05, 0.25, 0.88


@dataclass(frozen=True)
class FaultEvent:
    """One scheduled fault: `kind` at `at_s` seconds into the run, lasting `duration_s` (0: instant)."""

    at_s: float
    kind: str
    duration_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        span = f" for {self.duration_s:.1f} s" if self.duration_s else ""
        return f"{self.at_s:7.1f} s  {self.kind}{span}" + (f" ({extra})" if extra else "")


def plan(seconds: float, seed: int) -> list[FaultEvent]:
    """The schedule of a run of `seconds` (at least MIN_SECONDS) for `seed`, in time order."""
    if not seconds >= MIN_SECONDS:
        raise ValueError(f"a soak needs at least {MIN_SECONDS:g} seconds, got {seconds!r}")
    rng = random.Random(seed)
    events = [
        FaultEvent(PROMOTE_AT * seconds, PROMOTE),
        FaultEvent(SWITCH_AT * seconds, SWITCH),
        FaultEvent(DB_RESTART_AT * seconds, DB_RESTART, min(8.0, 0.05 * seconds)),
        FaultEvent(KILL_AT * seconds, KILL),
        FaultEvent(QUIET_AT * seconds, QUIET),
    ]
    start, end = FAULTS_FROM * seconds, FAULTS_UNTIL * seconds
    # Disconnects: about one a minute, at least three, each at a jittered point of its own slot.
    n_disconnects = max(3, round(seconds / 60))
    for i, when in enumerate(_spread(rng, start, end, n_disconnects)):
        scope = ("public", "private", "all")[i % 3]
        events.append(FaultEvent(when, WS_DISCONNECT, params={"scope": scope}))
    # Dropped deltas: short windows, a few per cent of deltas each (each drop is a gap and a resync).
    n_drops = max(2, round(seconds / 100))
    drop_len = min(10.0, 0.06 * seconds)
    for when in _spread(rng, start, end - drop_len, n_drops):
        rate = round(rng.uniform(0.02, 0.05), 3)
        events.append(FaultEvent(when, DELTA_DROP, drop_len, {"delta_drop_rate": rate}))
    # REST failures: windows of 5xx and rate limits in turn, and one outage, in slots of their own.
    n_rest = max(3, 2 * round(seconds / 150) + 1)
    rest_len = min(8.0, 0.1 * seconds)
    rest_start = REST_FAULTS_FROM * seconds
    slot = (end - rest_start) / n_rest
    outage_slot = rng.randrange(n_rest)
    for i in range(n_rest):
        when = rest_start + i * slot + rng.uniform(0, max(0.0, slot - rest_len))
        if i == outage_slot:
            params: dict[str, Any] = {"error_rate": 1.0, "error_kinds": ["http"]}
            events.append(FaultEvent(when, REST_OUTAGE, rest_len, params))
            continue
        kind = HTTP_5XX if i % 2 == 0 else RATE_LIMIT
        kinds = ["http", "retcode"] if kind == HTTP_5XX else ["ratelimit"]
        rate = round(rng.uniform(0.3, 0.5), 3)
        events.append(FaultEvent(when, kind, rest_len, {"error_rate": rate, "error_kinds": kinds}))
    return sorted(events, key=lambda e: (e.at_s, KINDS.index(e.kind)))


def _spread(rng: random.Random, start: float, end: float, n: int) -> list[float]:
    """`n` points, one at a random place in each of `n` equal slots of [start, end)."""
    slot = (end - start) / n
    return [start + i * slot + rng.uniform(0.1, 0.9) * slot for i in range(n)]
