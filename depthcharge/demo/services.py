"""The demo's long-running processes, started the way an operator runs them (docs/operations.md): the
paper exchange (`depthcharge exchange-sim`), the trading daemon (`depthcharge daemon`), and the Dagster
webserver and daemon on the project's instance. Each is a child process with its output in
`$VAR_DIR/demo/logs/<name>.log`; each is stopped with SIGTERM (its graceful path), then SIGKILL after
STOP_TIMEOUT_S, in the reverse order of start."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from depthcharge.child_process import stop_child
from depthcharge.demo.progress import StageFailed, wait_for

STOP_TIMEOUT_S = 30.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


def http_ok(url: str) -> bool:
    """True when `url` answers 2xx within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as reply:
            return 200 <= int(reply.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class Services:
    """Children started by the demo, stopped together (also on error or Ctrl-C)."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, command: Sequence[str], env: Mapping[str, str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            # Its own process group: Ctrl-C in the terminal reaches the demo only, which stops the children
            # in order (the daemon must stop before the database and the exchange it talks to).
            process = subprocess.Popen(
                list(command), env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def wait_ready(self, child: Child, url: str, timeout_s: float) -> None:
        """Wait until `url` answers; fail naming the child's log if it exits or does not answer in time."""

        def ready() -> bool:
            if child.process.poll() is not None:
                raise StageFailed(
                    f"{child.name} exited with status {child.process.returncode}: see {child.log}"
                )
            return http_ok(url)

        try:
            wait_for(f"waiting for {child.name}", ready, timeout_s=timeout_s, poll_s=0.5, bar=False)
        except StageFailed as exc:
            raise StageFailed(f"{exc.message} (log: {child.log})") from None

    def check_alive(self) -> None:
        """Fail naming any child that has exited."""
        for child in self.children:
            if child.process.poll() is not None:
                raise StageFailed(
                    f"{child.name} exited with status {child.process.returncode}: see {child.log}"
                )

    def stop(self) -> list[str]:
        """Stop every child, newest first; returns one line per child."""
        lines = []
        for child in reversed(self.children):
            p = child.process
            if p.poll() is None:
                if stop_child(p, STOP_TIMEOUT_S):
                    lines.append(f"{child.name} stopped (status {p.returncode})")
                else:
                    lines.append(f"{child.name} did not stop within {STOP_TIMEOUT_S:.0f} s: killed")
            else:
                lines.append(f"{child.name} had exited (status {p.returncode})")
            # What the child started (the Dagster webserver's and daemon's code servers) is in its process
            # group, which start() made its own: nothing may outlive the demo.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
        self.children.clear()
        return lines


def depthcharge_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "depthcharge", *args]
