"""stop_child: SIGTERM, then SIGKILL when the child does not exit in time."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from depthcharge.child_process import stop_child

# Each child prints "ready" once its SIGTERM disposition is set, so the test never signals it too early. A
# child inherits an ignored or blocked SIGTERM from the process that starts it, and the suite's workers run
# other code first (in one CI run two of these children outlived SIGTERM), so the obeying one restores it.
IGNORES_SIGTERM = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
SLEEPS = (
    "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_DFL); "
    "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM}); print('ready', flush=True); time.sleep(60)"
)


def _start(code: str) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert p.stdout is not None
    with p.stdout:
        assert p.stdout.readline().strip() == b"ready"
    return p


def test_a_child_that_obeys_sigterm_stops_by_itself() -> None:
    p = _start(SLEEPS)
    assert stop_child(p, 10.0) is True
    assert p.returncode == -signal.SIGTERM


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    p = _start(IGNORES_SIGTERM)
    began = time.monotonic()
    assert stop_child(p, 0.5) is False
    assert p.returncode == -signal.SIGKILL
    assert 0.4 < time.monotonic() - began < 10


def test_signalled_sends_nothing_more_and_an_exited_child_is_reaped() -> None:
    p = _start(SLEEPS)
    p.send_signal(signal.SIGTERM)
    assert stop_child(p, 10.0, signalled=True) is True
    assert p.returncode == -signal.SIGTERM
    assert stop_child(p, 0.1) is True  # already exited: nothing to send, nothing to kill
