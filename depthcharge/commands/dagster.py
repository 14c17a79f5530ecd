"""`depthcharge dagster ...`: the Dagster UI and daemon, Celery workers, and any `dagster` command, on the
project's instance and database.

* `depthcharge dagster` starts dagster-webserver and dagster-daemon on the code location
  `orchestration.definitions`, prints the UI's URL, and stops both on Ctrl-C or SIGTERM;
* `depthcharge dagster worker` starts a Celery worker that runs the steps of runs started with
  DAGSTER_EXECUTOR=celery (docs/scaling.md);
* `depthcharge dagster ARGS` runs `dagster ARGS` (e.g. `job execute -m orchestration.definitions -j retraining_job`).

Dagster reads its configuration from the environment: the instance (`$DAGSTER_HOME/dagster.yaml`, a copy of
`infra/dagster/dagster.yaml`) stores runs, events and schedules through DAGSTER_POSTGRES_URL, and the
resources of `orchestration.definitions` read the settings' variables (`dg.EnvVar`). This command resolves
the settings once, starts the embedded server if the project runs on it (and keeps it up while Dagster
runs), and hands every child process every setting as a variable, with DATABASE_URL pointing at the
resolved server and the lake, report and model directories made absolute.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType

import click

import infra
from depthcharge.child_process import stop_child
from depthcharge.commands._context import database
from infra.db.connection import DAGSTER_DATABASE, Database, dagster_postgres_url
from infra.settings import Settings, load_settings

INSTANCE_YAML = Path(infra.__file__).parent / "dagster" / "dagster.yaml"  # package data of `infra`
CODE_LOCATION = "orchestration.definitions"
CELERY_CONFIG_MODULE = "dagster_celery_config"  # dagster_celery.app imports it when it is on the path
STOP_TIMEOUT_S = 30.0


def resource_environment(settings: Settings, db: Database) -> dict[str, str]:
    """Every setting as a variable, with the values the code location needs resolved: DATABASE_URL (the
    server in use), the lake, report and model directories (absolute) and the Celery result backend."""
    config = settings.orchestration
    return {
        **settings.to_env(),
        "DATABASE_URL": db.conninfo,
        "VAR_DIR": str(settings.var_dir.resolve()),
        "LAKE_DIR": str(config.lake_dir.resolve()),
        "REPORTS_DIR": str(config.reports_dir.resolve()),
        "MODELS_DIR": str(config.models_dir.resolve()),
        "CELERY_BROKER_URL": config.celery_broker_url,
        "CELERY_RESULT_BACKEND": config.celery_result_backend,
    }


def dagster_environment(settings: Settings, db: Database) -> dict[str, str]:
    """Prepare the Dagster instance for `db` and return the environment Dagster processes need.

    Copies the project's `dagster.yaml` into DAGSTER_HOME (replacing an older copy), creates the
    `dagster` database on the server if missing, and returns :func:`resource_environment` plus
    DAGSTER_HOME and DAGSTER_POSTGRES_URL.
    """
    home = settings.dagster.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_YAML, home / "dagster.yaml")
    db.with_dbname(DAGSTER_DATABASE).ensure_database()
    return {
        **resource_environment(settings, db),
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": dagster_postgres_url(db),
    }


def free_port(host: str) -> int:
    """A port the OS reports free on ``host`` (for DAGSTER_UI_PORT=0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _stop_requested() -> Iterator[list[int]]:
    """Turn SIGTERM into a flag (and SIGINT too: the children receive Ctrl-C from the terminal themselves)."""
    received: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, note) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def supervise(commands: Mapping[str, Sequence[str]], env: Mapping[str, str], *, on_start: str = "") -> int:
    """Run ``commands`` side by side until one exits or a stop is requested; then stop the others (SIGTERM,
    then SIGKILL after STOP_TIMEOUT_S). Returns 0 after a requested stop, else the first exit status."""
    with _stop_requested() as received:
        children = {name: subprocess.Popen(list(cmd), env=dict(env)) for name, cmd in commands.items()}
        if on_start:
            click.echo(on_start, nl=True)
        code = 0
        try:
            while not received:
                exited = {name: p.returncode for name, p in children.items() if p.poll() is not None}
                if exited:
                    name, code = next(iter(exited.items()))
                    click.echo(f"{name} exited with status {code}; stopping the others", err=True)
                    break
                time.sleep(0.2)
        finally:
            for p in children.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            for name, p in children.items():
                if not stop_child(p, max(0.1, deadline - time.monotonic()), signalled=True):
                    click.echo(f"{name} did not stop within {STOP_TIMEOUT_S:.0f} s: killed", err=True)
        if received:
            click.echo("stopped")
        return code


def serve_commands(host: str, port: int) -> dict[str, list[str]]:
    """The webserver and the daemon on the code location."""
    return {
        "dagster-webserver": [
            sys.executable, "-m", "dagster_webserver", "-h", host, "-p", str(port), "-m", CODE_LOCATION,
        ],
        # `dagster-daemon` is a CLI of its own (dagster._daemon), not a `dagster` subcommand.
        "dagster-daemon": [sys.executable, "-m", "dagster._daemon", "run", "-m", CODE_LOCATION],
    }  # fmt: skip


def write_celery_config(home: Path, broker: str, backend: str) -> Path:
    """The module `dagster_celery.app` reads the broker and backend from; returns its directory."""
    directory = home / "celery"
    directory.mkdir(parents=True, exist_ok=True)
    module = directory / f"{CELERY_CONFIG_MODULE}.py"
    # Written aside and renamed: workers started together share the file, and one must never import it
    # half-written by another.
    tmp = directory / f".{CELERY_CONFIG_MODULE}.{os.getpid()}.tmp"
    tmp.touch(mode=0o600)  # the broker URL may carry a password
    tmp.write_text(
        "# Written by `depthcharge dagster worker` from CELERY_BROKER_URL / CELERY_RESULT_BACKEND.\n"
        f"broker_url = {broker!r}\nresult_backend = {backend!r}\nworker_prefetch_multiplier = 1\n"
    )
    os.replace(tmp, module)
    return directory


def worker_command(name: str, concurrency: int, loglevel: str) -> list[str]:
    """A Celery worker on Dagster's queue, taking one task at a time per process."""
    return [
        sys.executable, "-m", "celery", "-A", "dagster_celery.app", "worker",
        "-Q", "dagster", "-n", f"{name}@%h", "-c", str(concurrency), "--prefetch-multiplier=1",
        "--without-gossip", "--without-mingle", "--loglevel", loglevel,
    ]  # fmt: skip


@click.command("worker")
@click.option("--name", default=None, help="Worker name (default: depthcharge-<pid>); the host is appended.")
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=1, show_default=True, help="Step processes."
)
@click.option("--loglevel", default="INFO", show_default=True)
def _worker_options(name: str | None, concurrency: int, loglevel: str) -> tuple[str, int, str]:
    return name or f"depthcharge-{os.getpid()}", concurrency, loglevel


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def dagster(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Serve the Dagster UI and daemon (no ARGS), start a Celery worker (`worker [--name N] [--concurrency C]`),
    or run `dagster ARGS` on the project's instance.

    Examples: `depthcharge dagster` (UI on http://127.0.0.1:3000), `depthcharge dagster worker`,
    `depthcharge dagster job execute -m orchestration.definitions -j retraining_job`.
    """
    settings = load_settings()
    with database(settings) as target:
        env = {**os.environ, **dagster_environment(settings, target)}
        if not args:
            config = settings.orchestration
            port = config.ui_port or free_port(config.ui_host)
            code = supervise(
                serve_commands(config.ui_host, port),
                env,
                on_start=f"Dagster UI on http://{config.ui_host}:{port} (instance {env['DAGSTER_HOME']}); "
                "Ctrl-C stops the webserver and the daemon",
            )
        elif args[0] == "worker":
            options = _worker_options.main(
                list(args[1:]), prog_name="depthcharge dagster worker", standalone_mode=False
            )
            if not isinstance(options, tuple):  # --help was printed
                ctx.exit(0)
            name, concurrency, loglevel = options
            config = settings.orchestration
            config_dir = write_celery_config(
                Path(env["DAGSTER_HOME"]), config.celery_broker_url, config.celery_result_backend
            )
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(config_dir), env.get("PYTHONPATH", "")) if p)
            code = supervise(
                {"celery worker": worker_command(name, concurrency, loglevel)},
                env,
                on_start=f"Celery worker {name} ({concurrency} process(es)) on the broker of CELERY_BROKER_URL",
            )
        else:
            try:
                code = subprocess.run(
                    [sys.executable, "-m", "dagster", *args], env=env, check=False
                ).returncode
            except KeyboardInterrupt:
                code = 130
    # SystemExit, not ctx.exit: `depthcharge.cli.main` runs click with standalone_mode=False, where an Exit
    # becomes a return value that main() drops, and a failed child would end the command with status 0.
    sys.exit(code)
