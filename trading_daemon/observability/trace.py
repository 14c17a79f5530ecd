"""Trace and correlation ids carried by context variables (original spec §7, Example 3).

A trace id names one causal chain: the market event, the decision, the order, its fills and the
audit rows. It lives in structlog's context variables, so every log line written inside an
operation carries it, across `await` points and into tasks created inside it (asyncio copies the
context into each new task). A correlation id links operations that are related but not causally
nested, e.g. everything done for one API request or one reconciliation pass.

    async with trace_operation("place_order", symbol="BTCUSDT"):    # new trace id
        with trace_operation("risk_check"):                          # same trace id
            ...
    # trace id cleared again
"""

from __future__ import annotations

import functools
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextvars import Token
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

import structlog

__all__ = [
    "TraceOperation",
    "bind_correlation_id",
    "clear_correlation_id",
    "current_correlation_id",
    "current_trace_id",
    "new_correlation_id",
    "new_trace_id",
    "trace_operation",
    "with_trace",
]

P = ParamSpec("P")
R = TypeVar("R")

_TRACE_KEY = "trace_id"
_CORRELATION_KEY = "correlation_id"
_log = structlog.stdlib.get_logger(__name__)


def new_trace_id() -> str:
    """A fresh trace id: 32 hex characters."""
    return uuid.uuid4().hex


def new_correlation_id() -> str:
    """A fresh correlation id: 32 hex characters."""
    return uuid.uuid4().hex


def _context_str(key: str) -> str | None:
    value = structlog.contextvars.get_contextvars().get(key)
    return value if isinstance(value, str) else None


def current_trace_id() -> str | None:
    """The trace id of the enclosing operation, or None outside any."""
    return _context_str(_TRACE_KEY)


def current_correlation_id() -> str | None:
    """The correlation id bound in this context, or None."""
    return _context_str(_CORRELATION_KEY)


def bind_correlation_id(correlation_id: str | None = None) -> str:
    """Bind a correlation id (a new one when None) for the rest of the current context; return it.

    Call it at the top of a task or request handler: the binding lasts as long as that task's
    context, and `clear_correlation_id` removes it earlier.
    """
    cid = correlation_id or new_correlation_id()
    structlog.contextvars.bind_contextvars(**{_CORRELATION_KEY: cid})
    return cid


def clear_correlation_id() -> None:
    """Remove the correlation id from the current context."""
    structlog.contextvars.unbind_contextvars(_CORRELATION_KEY)


class TraceOperation:
    """One traced operation; a sync and an async context manager. Create one per `with` block.

    Entering starts a trace (or joins the active one) and logs `operation_started`; leaving logs
    `operation_completed` with `duration_ms`, or `operation_failed` (ERROR, with the error) or
    `operation_cancelled`, and clears the trace id if this operation started it.
    """

    def __init__(self, name: str, *, trace_id: str | None = None, fields: Mapping[str, Any]) -> None:
        self.name = name
        self.fields = dict(fields)
        self._requested_trace_id = trace_id
        self.trace_id: str | None = None
        self.duration_ms: float | None = None
        self._tokens: Mapping[str, Token[Any]] | None = None
        self._started = 0.0

    @property
    def is_root(self) -> bool:
        """True when this operation started the trace (it is the outermost one)."""
        return self._tokens is not None

    def _enter(self) -> TraceOperation:
        active = current_trace_id()
        if active is None:
            self.trace_id = self._requested_trace_id or new_trace_id()
            # Tokens rather than unbind: leaving restores exactly the state found on entry.
            self._tokens = structlog.contextvars.bind_contextvars(**{_TRACE_KEY: self.trace_id})
        else:
            self.trace_id = active
        self._started = time.perf_counter()
        _log.info("operation_started", operation=self.name, **self.fields)
        return self

    def _exit(self, exc: BaseException | None) -> None:
        self.duration_ms = round((time.perf_counter() - self._started) * 1000.0, 3)
        common: dict[str, Any] = {"operation": self.name, "duration_ms": self.duration_ms, **self.fields}
        try:
            if exc is None:
                _log.info("operation_completed", **common)
            elif not isinstance(exc, Exception):
                # CancelledError, KeyboardInterrupt: shutdown paths, not failures of the operation.
                _log.info("operation_cancelled", error_type=type(exc).__name__, **common)
            else:
                if self.is_root:
                    # The traceback once, at the outermost operation, not once per nesting level.
                    common["exc_info"] = exc
                _log.error("operation_failed", error=str(exc), error_type=type(exc).__name__, **common)
        finally:
            if self._tokens is not None:
                structlog.contextvars.reset_contextvars(**self._tokens)
                self._tokens = None

    def __enter__(self) -> TraceOperation:
        return self._enter()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit(exc)

    async def __aenter__(self) -> TraceOperation:
        return self._enter()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit(exc)


def trace_operation(name: str, *, trace_id: str | None = None, **fields: Any) -> TraceOperation:
    """Trace the block as operation `name`; `fields` go on its start and end lines.

    `trace_id` adopts an id from elsewhere (e.g. the market event that caused this) when no trace
    is active; inside an active trace it is ignored and the active id is inherited.
    """
    return TraceOperation(name, trace_id=trace_id, fields=fields)


@overload
def with_trace(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def with_trace(*, name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def with_trace(
    func: Callable[P, R] | None = None, /, *, name: str | None = None
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Run every call of a sync or async function inside `trace_operation`.

    Use bare (`@with_trace`, operation named after the function's qualified name) or with a name
    (`@with_trace(name="place_order")`).
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        operation = name or fn.__qualname__
        if inspect.iscoroutinefunction(fn):
            async_fn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with trace_operation(operation):
                    return await async_fn(*args, **kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with trace_operation(operation):
                return fn(*args, **kwargs)

        return wrapper

    if func is not None:
        return decorate(func)
    return decorate
