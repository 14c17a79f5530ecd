from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
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


@pytest.mark.slow  # records, trains through Dagster, trades and decides on the paper exchange: about 5 min
@pytest.mark.timeout(1200)
def test_demo_on_embedded_defaults() -> None:
    var = Path("/tmp") / f"dc-demo-{os.getpid()}"  # short: the embedded server's socket lives here
    env_clean = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    args = ["--seconds", "5", "--train-minutes", "30", "--trade-seconds", "10", "--decide-minutes", "0.5"]
    proc = subprocess.run(
        [sys.executable, "-m", "depthcharge", "demo", *args],
        env={**env_clean, "VAR_DIR": str(var)},
        capture_output=True,
        text=True,
        timeout=1100,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "(embedded)" in out and f"at revision {head_revision()}" in out and "audit_log" in out
    # it recorded the three symbols from the in-process paper exchange
    built = re.search(r"rows built: (\d+) \(BTCUSDT (\d+), ETHUSDT (\d+), SOLUSDT (\d+)\)", out)
    assert built is not None and all(int(n) >= 3 for n in built.groups()[1:]), out
    assert re.search(r"market_snapshots +│ +" + built.group(1) + " ", out), out
    assert (var / "pg" / "PG_VERSION").exists()
    # then it recorded 30 min of each symbol offline and materialised the Dagster graph for that hour
    stored = re.findall(r"(BTCUSDT|ETHUSDT|SOLUSDT): (\d[\d,]*) rows", out)
    assert {s for s, _ in stored} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}, out
    assert all(int(n.replace(",", "")) == 1800 for _, n in stored), out
    for asset in ("raw_snapshots", "labelled_features", "training_dataset", "model_candidate",
                  "model_evaluation", "drift_report"):  # fmt: skip
        assert re.search(rf"^{asset} .* materialised", out, re.MULTILINE), out
    checks = re.findall(r"checks (\d+)/(\d+) passed", out)
    assert checks and all(passed == run for passed, run in checks), out  # every asset check passed
    for name in ("cnn_lstm", "majority", "logistic", "gradient_boosting"):
        assert re.search(rf"^\| {name} \| 10s \|", out, re.MULTILINE), out
    # ... and the gate decided on the CNN-LSTM (and the run's best baseline when it was refused)
    gated = re.findall(r"^\| (\S+) \| (True|False) \| macro_f1_10s \|", out, re.MULTILINE)
    assert gated, out
    assert all((var / "models" / version / "weights.pt").exists() for version, _ in gated)
    assert "depthcharge dagster" in out
    # the scripted trading stage: every intent became an order, and reconciliation found nothing amiss
    execution = re.search(r"^execution: (\d+) intents \((\d+) repeats, (\d+) refused\)", out, re.MULTILINE)
    assert execution is not None and int(execution.group(1)) >= 1, out
    assert re.search(r"^reconciliation: \d+ passes \(start ok 0 discrepancies", out, re.MULTILINE), out
    # the deciding stage ran without errors and reported the gate, risk and per-strategy results
    decided = re.search(r"^rows decided: (\d+) .*; errors 0$", out, re.MULTILINE)
    assert decided is not None and int(decided.group(1)) > 0, out
    assert re.search(r"^ML gate \(\S+\): ", out, re.MULTILINE) and "per strategy (this run)" in out, out
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


def test_a_commands_exit_status_reaches_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ctx.exit(n)` in any command ends the process with n (click runs without standalone mode)."""
    from depthcharge.cli import cli, main

    @cli.command("exit-three", hidden=True)
    @click.pass_context
    def exit_three(ctx: click.Context) -> None:
        ctx.exit(3)

    monkeypatch.setattr(sys, "argv", ["depthcharge", "exit-three"])
    try:
        with pytest.raises(SystemExit) as ended:
            main()
        assert ended.value.code == 3
    finally:
        cli.commands.pop("exit-three")
