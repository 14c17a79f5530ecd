"""Structured JSON logging for the daemon (original spec "Logging", §7; docs/architecture.md "Conventions in code").

Every line is one JSON object with `timestamp` (ISO 8601, UTC), `level`, `logger`, `event`, and the
`trace_id` / `correlation_id` of the context it was written in (null outside any operation), so
`jq 'select(.trace_id == "…")'` pulls out everything one trade caused. structlog events and plain
stdlib records (aiohttp, psycopg, uvicorn …) go through the same `ProcessorFormatter`, so both look
alike.

Files, under `log_dir`, named by UTC day and switched at UTC midnight:

* `bot_YYYYMMDD.log`: every record at or above the configured level;
* `bot_errors_YYYYMMDD.log`: ERROR and above only.

With a retention (`LOG_RETENTION_DAYS`), files of days more than that many days before the current UTC
day are deleted when logging is configured and again at each UTC midnight (`prune_logs`).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "DailyFileHandler",
    "configure_console_logging",
    "configure_logging",
    "get_logger",
    "prune_logs",
    "reset_logging",
]

# Marks the handlers configure_logging installed on the root logger, so a second call replaces
# exactly those and leaves foreign ones (pytest's caplog, a systemd journal handler) alone.
_OWNED_ATTR = "_depthcharge_owned"
# The daily files this module writes; nothing else in the directory is ever pruned.
_DAILY_FILE = re.compile(r"^bot(?:_errors)?_(\d{8})\.log$")


def prune_logs(log_dir: Path, retention_days: int, *, now: float | None = None) -> list[Path]:
    """Delete `bot_YYYYMMDD.log` / `bot_errors_YYYYMMDD.log` files of days before the current UTC day
    minus `retention_days` (so today and the `retention_days` days before it are kept).

    Returns the deleted paths. Other files, and names that only look similar, are left alone.
    """
    if isinstance(retention_days, bool) or not isinstance(retention_days, int) or retention_days < 1:
        raise ValueError(f"LOG_RETENTION_DAYS must be a positive number of days, got {retention_days!r}")
    today = datetime.fromtimestamp(time.time() if now is None else now, UTC).date()
    oldest_kept = today - timedelta(days=retention_days)
    removed: list[Path] = []
    if not log_dir.is_dir():
        return removed
    for path in sorted(log_dir.iterdir()):
        match = _DAILY_FILE.match(path.name)
        if match is None or not path.is_file():
            continue
        try:
            day = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC).date()
        except ValueError:
            continue  # eight digits that are not a date: not ours
        if day < oldest_kept:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


class DailyFileHandler(logging.FileHandler):
    """A file handler writing to `{prefix}_{YYYYMMDD}.log` for the current UTC day.

    The stdlib's TimedRotatingFileHandler renames the active file to `name.suffix` at rollover;
    the spec wants the date inside the name from the start, so this handler switches files
    instead. `clock` (epoch seconds) is injectable for tests. With `retention_days`, each switch to a new
    day also prunes the directory's old daily files (`prune_logs`).
    """

    def __init__(
        self,
        directory: Path,
        prefix: str,
        *,
        clock: Callable[[], float] = time.time,
        retention_days: int | None = None,
    ) -> None:
        self.directory = directory
        self.prefix = prefix
        self.retention_days = retention_days
        self._clock = clock
        now = clock()
        self._next_switch = _next_utc_midnight(now)
        # delay=True: the error file only appears once there is an error to put in it.
        super().__init__(self._path_for(now), encoding="utf-8", delay=True)

    def _path_for(self, epoch: float) -> Path:
        day = datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%d")
        return self.directory / f"{self.prefix}_{day}.log"

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record, first switching to the new day's file if UTC midnight has passed."""
        now = self._clock()
        if now >= self._next_switch:
            if self.stream is not None:
                self.stream.close()
                self.stream = None  # reopened lazily by FileHandler.emit
            self.baseFilename = str(self._path_for(now).absolute())
            self._next_switch = _next_utc_midnight(now)
            if self.retention_days is not None:
                try:
                    prune_logs(self.directory, self.retention_days, now=now)
                except OSError:
                    self.handleError(record)  # a failed clean-up must not lose the record
        super().emit(record)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at emit time (pytest and systemd both swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _next_utc_midnight(epoch: float) -> float:
    day = datetime.fromtimestamp(epoch, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day + timedelta(days=1)).timestamp()


def _add_trace_fields(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    # Present on every line (null outside an operation) so log queries never need a "has key" test.
    event_dict.setdefault("trace_id", None)
    event_dict.setdefault("correlation_id", None)
    return event_dict


def _shared_processors() -> list[Processor]:
    """The processors both structlog events and foreign stdlib records run through."""
    return [
        structlog.contextvars.merge_contextvars,
        _add_trace_fields,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


def _json_formatter() -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )


def _remove_owned_handlers(root: logging.Logger) -> None:
    for handler in list(root.handlers):
        if getattr(handler, _OWNED_ATTR, False):
            root.removeHandler(handler)
            handler.close()


def configure_logging(
    log_dir: Path, level: str, *, console: bool = True, retention_days: int | None = None
) -> None:
    """Route structlog and stdlib logging to JSON lines in daily files under `log_dir` (and stderr).

    `level` is a stdlib level name (`LOG_LEVEL`, e.g. "INFO"). `retention_days` (`LOG_RETENTION_DAYS`)
    prunes older daily files now and at every UTC midnight; None keeps them all. Safe to call again:
    the handlers of the previous call are closed and replaced, nothing is duplicated.
    """
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        raise ValueError(f"LOG_LEVEL {level!r} is not a logging level name")
    log_dir.mkdir(parents=True, exist_ok=True)
    if retention_days is not None:
        prune_logs(log_dir, retention_days)

    handlers: list[logging.Handler] = [
        DailyFileHandler(log_dir, "bot", retention_days=retention_days),  # prunes both kinds of file
        DailyFileHandler(log_dir, "bot_errors"),
    ]
    handlers[1].setLevel(logging.ERROR)
    if console:
        handlers.append(_StderrHandler())
    _install(handlers, _json_formatter(), numeric_level)


def configure_console_logging(level: str) -> None:
    """Route structlog and stdlib logging to stderr only, one `key=value` line per event, from `level` up.

    For the command line's one-shot commands (`db status`, `record-sim`, `exchange-sim`, …), whose stdout
    is their output; the daemon and the demo call `configure_logging` instead, which replaces this.
    """
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        raise ValueError(f"log level {level!r} is not a logging level name")
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_empty_trace_fields,
            structlog.processors.format_exc_info,
            structlog.processors.KeyValueRenderer(
                key_order=["timestamp", "level", "logger", "event"], drop_missing=True
            ),
        ],
    )
    _install([_StderrHandler()], formatter, numeric_level)


def _install(handlers: list[logging.Handler], formatter: logging.Formatter, level: int) -> None:
    """structlog events become stdlib records; `handlers` replace the ones installed before."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a cached logger would keep the processor chain of an earlier configure call.
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    _remove_owned_handlers(root)
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _OWNED_ATTR, True)
        root.addHandler(handler)
    root.setLevel(level)


def _drop_empty_trace_fields(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    # On a terminal, `trace_id=None correlation_id=None` on every line is noise.
    for key in ("trace_id", "correlation_id"):
        if event_dict.get(key) is None:
            event_dict.pop(key, None)
    return event_dict


def reset_logging() -> None:
    """Close the handlers `configure_logging` installed and restore structlog's defaults."""
    _remove_owned_handlers(logging.getLogger())
    structlog.reset_defaults()


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger bound to the stdlib logger `name` (usually `__name__`)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
