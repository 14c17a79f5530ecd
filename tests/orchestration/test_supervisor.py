"""`depthcharge dagster` as an operator runs it: on the embedded server of a fresh VAR_DIR and a free port it
prints the UI's URL, the URL answers, dagster-webserver and dagster-daemon run as its children, and a stop
(SIGTERM to the command, or Ctrl-C: SIGINT to its whole process group, as a terminal sends it) ends it with
status 0 and leaves no process behind: neither child, nothing they started, nor the embedded PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from depthcharge.commands.dagster import STOP_TIMEOUT_S, serve_commands, supervise

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = (
    300.0  # initdb, the `dagster` database, then the location's imports (torch): a loaded machine
)
EXIT_BOUND_S = STOP_TIMEOUT_S + 30.0  # the command's own SIGKILL fallback, plus stopping the embedded server
URL_LINE = re.compile(r"Dagster UI on (http://\S+) ")
# Variables that would point the command at another server, instance or directory than the test's own.
FOREIGN = (
    "DATABASE_URL", "DAGSTER_HOME", "DAGSTER_POSTGRES_URL", "LAKE_DIR", "REPORTS_DIR", "MODELS_DIR",
    "DAGSTER_UI_HOST", "DAGSTER_UI_PORT", "DAGSTER_EXECUTOR",
)  # fmt: skip


class Output:
    """The command's stdout, drained by a thread: the children share the pipe, and a full pipe would block them."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._stream = proc.stdout
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        for line in self._stream:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def close(self) -> None:
        self._thread.join(timeout=10)
        self._stream.close()


@pytest.fixture
def var_dir() -> Iterator[Path]:
    # A short path: the embedded server's Unix socket lives under it (about 100 bytes at most).
    path = Path(f"/tmp/dc-sup-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _wait_for_url(proc: subprocess.Popen[str], out: Output, log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if found := URL_LINE.search(out.text()):
            return found.group(1)
        if proc.poll() is not None:
            pytest.fail(
                f"the command exited with {proc.returncode} before printing the URL:\n{log.read_text()}"
            )
        time.sleep(0.5)
    pytest.fail(f"no UI URL within {START_TIMEOUT_S:.0f} s:\n{out.text()}\n{log.read_text()[-4000:]}")


def _wait_for_answer(url: str, proc: subprocess.Popen[str], log: Path) -> bytes:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"the command exited with {proc.returncode} while starting:\n{log.read_text()[-4000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=10) as response:
                body: bytes = response.read()
                if response.status == 200:
                    return body
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(1.0)
    pytest.fail(
        f"{url}/server_info did not answer within {START_TIMEOUT_S:.0f} s:\n{log.read_text()[-4000:]}"
    )


def _children_by_role(proc: subprocess.Popen[str], url: str) -> dict[str, psutil.Process]:
    """The command's children running the command lines `serve_commands` gives for the printed port."""
    host, port = url.removeprefix("http://").split(":")
    wanted = {tuple(cmd): name for name, cmd in serve_commands(host, int(port)).items()}
    return {
        wanted[tuple(c.cmdline())]: c
        for c in psutil.Process(proc.pid).children()
        if tuple(c.cmdline()) in wanted
    }


def _postmaster_pid(var_dir: Path) -> int | None:
    pid_file = var_dir / "pg" / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.is_file() else None


@pytest.mark.slow(
    seconds=40
)  # the embedded server, then two processes importing the whole location: a minute or more
@pytest.mark.parametrize("stop", ["SIGTERM", "Ctrl-C"])
def test_serve_prints_the_url_and_stops_both_children(stop: str, var_dir: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    env |= {"VAR_DIR": str(var_dir), "DAGSTER_UI_HOST": "127.0.0.1", "DAGSTER_UI_PORT": "0"}
    log = tmp_path / "stderr.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "depthcharge", "dagster"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,  # its own process group, as a shell job has: Ctrl-C reaches the group
        )
    out = Output(proc)
    started: list[psutil.Process] = []
    try:
        url = _wait_for_url(proc, out, log)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url) and not url.endswith(":0"), url
        assert b"dagster_webserver_version" in _wait_for_answer(url, proc, log)

        roles = _children_by_role(proc, url)
        assert set(roles) == {"dagster-webserver", "dagster-daemon"}, [c.cmdline() for c in roles.values()]
        assert all(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in roles.values())
        postmaster = _postmaster_pid(var_dir)
        assert postmaster is not None and psutil.pid_exists(postmaster), "the embedded server is not running"
        # Everything the command started by now (the webserver's code server, any run), whose end is ours too.
        started += [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(postmaster)]

        if stop == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        began = time.monotonic()
        try:
            code = proc.wait(timeout=EXIT_BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {EXIT_BOUND_S:.0f} s after {stop}:\n{log.read_text()[-4000:]}")
        took = time.monotonic() - began
        out.close()
        assert code == 0, f"exit status {code} after {stop}:\n{log.read_text()[-4000:]}"
        assert out.lines[-1].strip() == "stopped", out.text()[-2000:]
        assert took < STOP_TIMEOUT_S, f"{took:.1f} s: a child needed the SIGKILL fallback\n{log.read_text()}"
        _, alive = psutil.wait_procs(started, timeout=5)
        assert not alive, f"left running after {stop}: {[(p.pid, p.cmdline()) for p in alive]}"
        assert _postmaster_pid(var_dir) is None, "the embedded server's postmaster.pid is still there"
    finally:  # a failed test leaves nothing running either
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            out.close()
        for p in started:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


def test_a_child_that_exits_stops_the_other_and_gives_its_status() -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    failing = [sys.executable, "-c", "import time, sys; time.sleep(0.5); sys.exit(3)"]
    began = time.monotonic()
    code = supervise({"sleeper": sleeper, "failing": failing}, dict(os.environ))
    assert code == 3
    assert time.monotonic() - began < 20, "the sleeper was not stopped when the other child exited"


@pytest.mark.slow  # the embedded server starts first: about 15 s
def test_the_command_exits_with_dagsters_status(var_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN} | {"VAR_DIR": str(var_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "depthcharge", "dagster", "no-such-command"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "No such command 'no-such-command'" in proc.stderr
