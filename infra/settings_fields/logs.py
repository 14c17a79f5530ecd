"""Logging settings: LoggingConfig."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from infra.configs import LoggingConfig, LogLevel
from infra.settings_fields.base import RuntimeStateFields, setting


class LoggingFields(RuntimeStateFields):
    """Where logs go, how much is logged and how long the files are kept."""

    log_dir: Path | None = setting(
        None, "LOG_DIR", "logging", "Directory of the daily log files. Unset: $VAR_DIR/logs."
    )
    log_level: LogLevel = setting(
        "INFO", "LOG_LEVEL", "logging", "Lowest level logged: DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )
    log_retention_days: int = setting(
        14,
        "LOG_RETENTION_DAYS",
        "logging",
        "Daily log files of older days are deleted (at start and at each UTC midnight).",
        ge=1,
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def logging(self) -> LoggingConfig:
        return LoggingConfig(
            dir=self.log_dir or self.var_dir / "logs",
            level=self.log_level,
            retention_days=self.log_retention_days,
        )
