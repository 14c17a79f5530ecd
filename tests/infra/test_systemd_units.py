"""The systemd units in infra/systemd: each runs a command that exists with arguments it accepts, under the
project's user, env file and restart policy; the daemon's is Type=notify with a watchdog; the Dagster layout
agrees with itself; `systemd-analyze verify` accepts every file (when systemd-analyze is installed)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from depthcharge.cli import cli
from depthcharge.commands.dagster import _worker_options

ROOT = Path(__file__).resolve().parents[2]
UNITS_DIR = ROOT / "infra" / "systemd"
UNITS = sorted(UNITS_DIR.glob("*.service"))
INSTALL = "/opt/depthcharge"  # where the units expect the checkout (README.md beside them)
VENV_BIN = f"{INSTALL}/.venv/bin/"
EXPECTED = {
    "depthcharge-daemon.service",
    "depthcharge-exchange-sim.service",
    "depthcharge-dagster-code-server.service",
    "depthcharge-dagster-webserver.service",
    "depthcharge-dagster-daemon.service",
    "depthcharge-celery-worker.service",
}
Unit = dict[str, dict[str, list[str]]]


def parse_unit(path: Path) -> Unit:
    """Sections of key → every value (a key may repeat, e.g. Environment=); comments and blanks skipped."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and section is not None, f"{path.name}:{number}: not `Key=value` inside a section: {raw!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def one(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}= should be set once, found {values}"
    return values[0]


def exec_start(unit: Unit) -> tuple[str, list[str]]:
    """The program's name in the venv and its arguments."""
    program, *args = shlex.split(one(unit, "Service", "ExecStart"))
    assert program.startswith(VENV_BIN), f"ExecStart should run a program of {VENV_BIN}, got {program}"
    return program.removeprefix(VENV_BIN), args


def accepts(command: click.Command, name: str, args: list[str]) -> None:
    """Parse `args` as `command` would, without running it (a bad option raises a UsageError)."""
    with command.make_context(name, list(args)):
        pass


def dagster_cli_accepts(args: list[str]) -> None:
    """`depthcharge dagster ARGS` runs `dagster ARGS` (or its own `worker`): resolve and parse them there."""
    if args[0] == "worker":
        accepts(_worker_options, "worker", args[1:])
        return
    from dagster._cli import create_dagster_cli

    command: click.Command = create_dagster_cli()  # type: ignore[no-untyped-call]
    while isinstance(command, click.Group) and args:
        sub = command.get_command(click.Context(command), args[0])
        assert sub is not None, f"dagster has no command {args[0]!r}"
        command, args = sub, args[1:]
    accepts(command, command.name or "", args)


@pytest.mark.parametrize("path", UNITS, ids=[p.name for p in UNITS])
def test_a_unit_runs_a_command_that_exists(path: Path) -> None:
    unit = parse_unit(path)
    service = unit["Service"]
    for key in ("Restart", "User", "WorkingDirectory", "EnvironmentFile"):
        assert service.get(key), f"{path.name} has no {key}="
    assert one(unit, "Service", "User") == "depthcharge"
    assert one(unit, "Service", "WorkingDirectory") == INSTALL
    assert one(unit, "Service", "EnvironmentFile") == f"-{INSTALL}/.env"
    assert one(unit, "Service", "Restart") == "on-failure"
    assert one(unit, "Install", "WantedBy") == "multi-user.target"
    for key in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "CapabilityBoundingSet"):
        assert key in service, f"{path.name} lacks the hardening option {key}="
    program, args = exec_start(unit)
    if program == "depthcharge":
        name, rest = args[0], args[1:]
        help_run = CliRunner().invoke(cli, [name, "--help"])
        assert help_run.exit_code == 0, f"`depthcharge {name} --help` failed: {help_run.output}"
        command = cli.commands[name]
        if name == "dagster":
            dagster_cli_accepts(rest)
        else:
            accepts(command, name, rest)
        return
    # Dagster's own webserver and daemon: they load no code and read the instance only (their units say why).
    assert program in ("dagster-webserver", "dagster-daemon"), f"{path.name} runs {program}, not depthcharge"
    assert (Path(sys.executable).parent / program).exists()
    args = [
        a.replace(INSTALL, str(ROOT), 1) if a.startswith(INSTALL) else a for a in args
    ]  # files of the checkout
    if program == "dagster-webserver":
        from dagster_webserver.cli import cli as webserver_cli

        accepts(webserver_cli, program, args)
    else:
        from dagster._daemon.cli import cli as daemon_cli

        assert args[0] == "run"
        accepts(daemon_cli.commands["run"], "run", args[1:])
    assert f"DAGSTER_HOME={INSTALL}/var/dagster" in service["Environment"]
    assert one(unit, "Unit", "AssertPathExists") == f"{INSTALL}/var/dagster/dagster.yaml"
    assert "depthcharge-dagster-code-server.service" in one(unit, "Unit", "After")


def test_every_process_has_a_unit_and_the_daemon_feeds_a_watchdog() -> None:
    assert {p.name for p in UNITS} == EXPECTED
    daemon = parse_unit(UNITS_DIR / "depthcharge-daemon.service")
    assert one(daemon, "Service", "Type") == "notify"
    assert int(one(daemon, "Service", "WatchdogSec")) > 0
    assert one(daemon, "Service", "NotifyAccess") == "main"
    assert one(daemon, "Service", "RestartPreventExitStatus") == "2"  # configuration errors: no restart loop


def test_the_dagster_units_meet_at_the_code_server() -> None:
    _, server_args = exec_start(parse_unit(UNITS_DIR / "depthcharge-dagster-code-server.service"))
    options = dict(
        zip(server_args[3::2], server_args[4::2], strict=True)
    )  # after `dagster code-server start`
    workspace_path = UNITS_DIR / "dagster-workspace.yaml"
    (entry,) = yaml.safe_load(workspace_path.read_text())["load_from"]
    grpc = entry["grpc_server"]
    assert (grpc["host"], str(grpc["port"])) == (options["--host"], options["--port"])
    assert grpc["location_name"] == options["--location-name"] == options["--module-name"]
    for name in ("depthcharge-dagster-webserver.service", "depthcharge-dagster-daemon.service"):
        _, args = exec_start(parse_unit(UNITS_DIR / name))
        workspace = args[args.index("--workspace") + 1]
        assert workspace == f"{INSTALL}/{workspace_path.relative_to(ROOT)}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_every_unit(tmp_path: Path) -> None:
    # The units name /opt/depthcharge; verify copies that point at this checkout and its venv, so that
    # systemd-analyze finds the programs they run.
    venv = str(Path(sys.executable).parent.parent)
    for path in UNITS:
        text = path.read_text().replace(f"{INSTALL}/.venv", venv).replace(INSTALL, str(ROOT))
        (tmp_path / path.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    output = (result.stdout + result.stderr).strip()
    # Unknown keys are only warnings for systemd: any word about our files counts as a failure.
    assert result.returncode == 0 and "depthcharge" not in output, output
