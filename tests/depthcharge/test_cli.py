from __future__ import annotations

import os
import subprocess
import sys

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


def test_evaluate_on_too_little_data_says_what_to_change(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Ten minutes of one symbol cannot fill three walk-forward folds: a message, not a traceback."""
    proc = _run(
        "evaluate", "--recordings", "dev_a", "--symbols", "BTCUSDT", "--seconds", "600", "--epochs", "1",
        env={"VAR_DIR": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "record more data" in proc.stderr and "--seconds" in proc.stderr and "--folds" in proc.stderr


def test_evaluate_refuses_folds_that_cover_the_recording_before_recording(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = _run("evaluate", "--folds", "7", "--test-fraction", "0.15", env={"VAR_DIR": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "--folds" in proc.stderr and "below 1" in proc.stderr
    assert not (tmp_path / "recordings").exists()  # refused before anything was recorded
