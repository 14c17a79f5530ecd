"""Named points where a test makes the daemon die or stall: the crash test's hook (tests/…/test_crash.py).

`DEPTHCHARGE_CRASH_AT=<point>:<n>` kills the process with SIGKILL the n-th time it passes `<point>` (no
cleanup, no flush: as a power cut would); `DEPTHCHARGE_STALL_AT=<point>:<n>:<seconds>` makes it sleep
there instead (a stalled process). Unset — always, outside tests — a crash point costs one dictionary
lookup. The points: `after_intent_write` (order written Pending, nothing sent), `before_send` (marked sent,
request not yet made), `after_submit_before_ack` (the exchange answered, the answer not yet applied).
"""

from __future__ import annotations

import os
import signal
import time

_counts: dict[str, int] = {}


def _parse(variable: str) -> tuple[str, int, float] | None:
    value = os.environ.get(variable)
    if not value:
        return None
    parts = value.split(":")
    try:
        return parts[0], int(parts[1]) if len(parts) > 1 else 1, float(parts[2]) if len(parts) > 2 else 0.0
    except ValueError as exc:
        raise ValueError(f"{variable}={value!r}: expected <point>:<n>[:<seconds>]") from exc


_CRASH = _parse("DEPTHCHARGE_CRASH_AT")
_STALL = _parse("DEPTHCHARGE_STALL_AT")


def crash_point(name: str) -> None:
    """Die (or stall) here if the environment asks for it at this passage of `name`."""
    if _CRASH is None and _STALL is None:
        return
    _counts[name] = count = _counts.get(name, 0) + 1
    if _CRASH is not None and _CRASH[0] == name and _CRASH[1] == count:
        os.kill(os.getpid(), signal.SIGKILL)
    if _STALL is not None and _STALL[0] == name and _STALL[1] == count:
        time.sleep(_STALL[2])  # blocking on purpose: the whole process stalls, as under a debugger
