"""`depthcharge dagster ...`: run a `dagster` command on the project's instance and database.

Dagster reads its configuration from the environment: the instance (`$DAGSTER_HOME/dagster.yaml`, a
copy of `infra/dagster/dagster.yaml`) stores runs and events through DAGSTER_POSTGRES_URL, and the
resources of `orchestration.definitions` read DATABASE_URL, DB_CONNECT_TIMEOUT_S and
MARKET_DATA_RETENTION_DAYS (`dg.EnvVar`). This command resolves the settings once, starts the embedded
server if the project runs on it (and keeps it up while Dagster runs), and hands the child process
every setting as an environment variable, DATABASE_URL pointing at the resolved server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

import infra
from depthcharge.commands._context import database
from infra.db.connection import DAGSTER_DATABASE, Database, dagster_postgres_url
from infra.settings import Settings, load_settings

INSTANCE_YAML = Path(infra.__file__).parent / "dagster" / "dagster.yaml"  # package data of `infra`


def dagster_environment(settings: Settings, db: Database) -> dict[str, str]:
    """Prepare the Dagster instance for `db` and return the environment Dagster processes need.

    Copies the project's `dagster.yaml` into DAGSTER_HOME (replacing an older copy), creates the
    `dagster` database on the server if missing, and returns every setting as a variable plus
    DATABASE_URL (the resolved server), DAGSTER_HOME and DAGSTER_POSTGRES_URL.
    """
    home = settings.dagster.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_YAML, home / "dagster.yaml")
    db.with_dbname(DAGSTER_DATABASE).ensure_database()
    return {
        **settings.to_env(),
        "DATABASE_URL": db.conninfo,
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": dagster_postgres_url(db),
    }


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def dagster(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Run `dagster ARGS` (default: `dev`, the webserver and daemon) on the project's instance.

    Examples: `depthcharge dagster` (UI on http://127.0.0.1:3000), `depthcharge dagster job execute
    -m orchestration.definitions -j market_data_retention_job`.
    """
    settings = load_settings()
    with database(settings) as target:
        env = {**os.environ, **dagster_environment(settings, target)}
        command = [sys.executable, "-m", "dagster", *(args or ("dev",))]
        try:
            code = subprocess.run(command, env=env, check=False).returncode
        except KeyboardInterrupt:
            code = 130
    ctx.exit(code)
