"""Stopping a child process the way every long-running command here expects to be stopped: SIGTERM (its
graceful path: open work finished, state flushed), then SIGKILL when it has not exited in time. Shared by
`depthcharge dagster serve`, the demo's services and the soak's daemons."""

from __future__ import annotations

import signal
import subprocess


def stop_child(process: subprocess.Popen[bytes], timeout_s: float, *, signalled: bool = False) -> bool:
    """SIGTERM ``process`` (unless ``signalled``: the caller already sent it), wait up to ``timeout_s``, then
    SIGKILL it and reap it. True when it exited by itself, False when it had to be killed."""
    if not signalled and process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=max(0.0, timeout_s))
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False
