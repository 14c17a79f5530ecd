from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.db.connection import Database
from infra.db.migrate import head_revision


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "depthcharge", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_commands_against_a_server(empty_db: Database) -> None:
    env = {"DATABASE_URL": empty_db.conninfo}
    status = _run("db", "status", env=env)
    assert status.returncode == 0, status.stderr
    head = head_revision()
    assert f"revision base (behind head {head}" in status.stdout and "missing" in status.stdout
    up = _run("db", "migrate", env=env)
    assert up.returncode == 0 and up.stdout.strip().endswith(f"base -> {head}"), up.stderr
    status = _run("db", "status", env=env)
    assert f"revision {head} (up to date)" in status.stdout and "market_snapshots" in status.stdout
    assert "missing" not in status.stdout
    down = _run("db", "downgrade", "base", env=env)
    assert down.returncode == 0 and down.stdout.strip().endswith(f"{head} -> base"), down.stderr
    url = _run("db", "url", "--dagster", env=env)
    assert url.stdout.startswith("postgresql+psycopg2://") and "/dagster" in url.stdout


@pytest.mark.slow  # records, then records offline and trains a small model: about 2 min
def test_demo_on_embedded_defaults() -> None:
    var = Path("/tmp") / f"dc-demo-{os.getpid()}"  # short: the embedded server's socket lives here
    env_clean = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "depthcharge", "demo", "--seconds", "5", "--train-minutes", "30"],
        env={**env_clean, "VAR_DIR": str(var)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "(embedded)" in proc.stdout
        and f"at revision {head_revision()}" in proc.stdout
        and "audit_log" in proc.stdout
    )
    # it recorded the three symbols from the in-process paper exchange
    built = re.search(r"rows built: (\d+) \(BTCUSDT (\d+), ETHUSDT (\d+), SOLUSDT (\d+)\)", proc.stdout)
    assert built is not None and all(int(n) >= 3 for n in built.groups()[1:]), proc.stdout
    assert re.search(r"market_snapshots │ +" + built.group(1) + " ", proc.stdout), proc.stdout
    assert (var / "pg" / "PG_VERSION").exists()
    # then it recorded 30 min of each symbol offline, trained, evaluated and registered a first model
    stored = re.findall(r"(BTCUSDT|ETHUSDT|SOLUSDT): (\d[\d,]*) rows", proc.stdout)
    assert {s for s, _ in stored} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}, proc.stdout
    assert all(int(n.replace(",", "")) == 1800 for _, n in stored), proc.stdout
    for name in ("cnn_lstm", "majority", "logistic", "gradient_boosting"):
        assert re.search(rf"^{name} +10s ", proc.stdout, re.MULTILINE), proc.stdout
    # ... passed the CNN-LSTM (and, if it was refused, the run's best baseline) through the gate
    gated = re.findall(
        r"^gate: (\S+) (\S+) (PROMOTED to production|kept as a candidate): ", proc.stdout, re.MULTILINE
    )
    assert gated and gated[0][0] == "hybrid_cnn_lstm", proc.stdout
    assert all((var / "models" / version / "weights.pt").exists() for _, version, _ in gated)
    assert re.search(r"^the gate promotes: (\S+ \S+|nothing from this run)", proc.stdout, re.MULTILINE), (
        proc.stdout
    )
    # persistent across runs, and stopped cleanly on exit (no postmaster left behind)
    again = subprocess.run(
        [sys.executable, "-m", "depthcharge", "db", "status"],
        env={**env_clean, "VAR_DIR": str(var)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert f"revision {head_revision()} (up to date)" in again.stdout
    assert not (var / "pg" / "postmaster.pid").exists()
    shutil.rmtree(var, ignore_errors=True)


def test_invalid_setting_is_named() -> None:
    proc = _run("db", "status", env={"TRADING_PAIRS": "btc-usd"})
    assert proc.returncode == 2
    assert "TRADING_PAIRS" in proc.stderr and "Traceback" not in proc.stderr
