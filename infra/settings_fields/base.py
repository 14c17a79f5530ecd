"""What every field module shares: the field helper, and VAR_DIR, under which the other paths default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field


def setting(default: Any, env: str, group: str, description: str, **constraints: Any) -> Any:
    """A field read from environment variable `env`, shown under `group` in .env.example."""
    return Field(
        default=default, alias=env, description=description, json_schema_extra={"group": group}, **constraints
    )


def blank_is_none(value: object) -> object:
    """`BYBIT_API_KEY=` in .env means "not set", as it does for a shell variable."""
    return None if isinstance(value, str) and not value.strip() else value


class RuntimeStateFields(BaseModel):
    """VAR_DIR: the mixins whose paths default under it derive from this one."""

    var_dir: Path = setting(
        Path("var"),
        "VAR_DIR",
        "runtime state",
        "Directory of runtime state: the embedded database (pg), the recorder's spool, models, logs and "
        "the Dagster instance live under it unless set otherwise.",
    )
