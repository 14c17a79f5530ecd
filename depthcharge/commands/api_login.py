"""The demo's login to the dashboard: APP_PASSWORD when set, else one generated once and kept.

The generated password lives in $VAR_DIR/api/demo_password (mode 0600) so that a second `make demo`, whose
database already holds the admin, prints the same working login.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

import click
from pydantic import SecretStr

from infra.settings import Settings
from trading_daemon.api.context import DaemonContext


def with_demo_login(settings: Settings) -> tuple[Settings, str]:
    """The settings with an admin password, and that password (to print, never to log)."""
    if settings.app_password is not None:
        return settings, settings.app_password.get_secret_value()
    path = settings.var_dir / "api" / "demo_password"
    password = _read(path) or _create(path)
    return settings.model_copy(update={"app_password": SecretStr(password)}), password


def announce_api(settings: Settings, password: str) -> Callable[[DaemonContext, str], None]:
    """An `on_api` hook for `run_service` that prints the dashboard's URL and the login."""

    def announce(ctx: DaemonContext, url: str) -> None:
        click.echo(
            f"dashboard: {url}/   API docs: {url}/docs   login: {settings.app_username} / {password}"
            + (
                ""
                if (ctx.api.dashboard_dir / "index.html").is_file()
                else "   (dashboard not built: make dashboard)"
            )
        )

    return announce


def _read(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def _create(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password
