"""Structured JSON logging for the daemon (original spec "Logging", §7; ARCHITECTURE.md "Conventions").

Every line is one JSON object with `timestamp` (ISO 8601, UTC), `level`, `logger`, `event`, and the
`trace_id` / `correlation_id` of the context it was written in (null outside any operation), so
`jq 'select(.trace_id == "…")'` pulls out everything one trade caused. structlog events and plain
stdlib records (aiohttp, psycopg, uvicorn …) go through the same `ProcessorFormatter`, so both look
alike.

Files, under `log_dir`, named by UTC day and switched at UTC midnight:

* `bot_YYYYMMDD.log`: every record at or above the configured level;
* `bot_errors_YYYYMMDD.log`: ERROR and above only.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["DailyFileHandler", "configure_logging", "get_logger", "reset_logging"]

# Marks the handlers configure_logging installed on the root logger, so a second call replaces
# exactly those and leaves foreign ones (pytest's caplog, a systemd journal handler) alone.
_OWNED_ATTR = "_depthcharge_owned"


class DailyFileHandler(logging.FileHandler):
    """A file handler writing to `{prefix}_{YYYYMMDD}.log` for the current UTC day.

    The stdlib's TimedRotatingFileHandler renames the active file to `name.suffix` at rollover;
    the spec wants the date inside the name from the start, so this handler switches files
    instead. `clock` (epoch seconds) is injectable for tests.
    """

    def __init__(self, directory: Path, prefix: str, *, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.prefix = prefix
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


def configure_logging(log_dir: Path, level: str, *, console: bool = True) -> None:
    """Route structlog and stdlib logging to JSON lines in daily files under `log_dir` (and stderr).

    `level` is a stdlib level name (`LOG_LEVEL`, e.g. "INFO"). Safe to call again: the handlers of
    the previous call are closed and replaced, nothing is duplicated.
    """
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        raise ValueError(f"LOG_LEVEL {level!r} is not a logging level name")
    log_dir.mkdir(parents=True, exist_ok=True)

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

    formatter = _json_formatter()
    handlers: list[logging.Handler] = [
        DailyFileHandler(log_dir, "bot"),
        DailyFileHandler(log_dir, "bot_errors"),
    ]
    handlers[1].setLevel(logging.ERROR)
    if console:
        handlers.append(_StderrHandler())

    root = logging.getLogger()
    _remove_owned_handlers(root)
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _OWNED_ATTR, True)
        root.addHandler(handler)
    root.setLevel(numeric_level)


def reset_logging() -> None:
    """Close the handlers `configure_logging` installed and restore structlog's defaults."""
    _remove_owned_handlers(logging.getLogger())
    structlog.reset_defaults()


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger bound to the stdlib logger `name` (usually `__name__`)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
