"""The demo's console: one line per stage with its duration, progress bars for the long ones, and the table
of stage timings at the end."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import click


class StageFailed(click.ClickException):
    """A stage could not finish; the message says which and why."""


@dataclass
class Stages:
    """Numbered stages, each timed; `timings` keeps (name, seconds, outcome) in order."""

    timings: list[tuple[str, float, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[list[str]]:
        """Print the stage's start; on exit its duration and outcome (what the body appended, else "done")."""
        number = len(self.timings) + 1
        click.secho(f"\n[{number}] {name}", bold=True)
        outcome: list[str] = []
        t0 = time.monotonic()
        try:
            yield outcome
        except BaseException:
            self.timings.append((name, time.monotonic() - t0, "FAILED"))
            raise
        seconds = time.monotonic() - t0
        said = "; ".join(outcome) or "done"
        self.timings.append((name, seconds, said))
        click.echo(f"    {said} ({seconds:.1f} s)")

    def table(self) -> str:
        width = max((len(n) for n, _, _ in self.timings), default=5)
        lines = [f"  {n:<{width}}  {s:7.1f} s  {_short(o)}" for n, s, o in self.timings]
        lines.append(f"  {'total':<{width}}  {time.monotonic() - self.started:7.1f} s")
        return "\n".join(lines)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def wait_for(
    label: str,
    ready: Callable[[], object],
    *,
    timeout_s: float,
    poll_s: float = 1.0,
    bar: bool = True,
) -> object:
    """Poll `ready` until it returns something truthy (returned) or `timeout_s` passes (StageFailed), with a
    progress bar over the time allowed."""
    deadline = time.monotonic() + timeout_s
    steps = max(1, int(timeout_s / poll_s))
    with contextlib.ExitStack() as stack:
        progress: Any = (
            stack.enter_context(click.progressbar(length=steps, label=f"    {label}", show_eta=False))
            if bar
            else None
        )
        while True:
            value = ready()
            if value:
                if progress is not None:
                    progress.update(steps - progress.pos)
                return value
            if time.monotonic() >= deadline:
                raise StageFailed(f"{label}: not within {timeout_s:.0f} s")
            time.sleep(poll_s)
            if progress is not None and progress.pos < steps - 1:
                progress.update(1)


def pause(label: str, seconds: float, every: Callable[[], str] | None = None) -> None:
    """Wait `seconds` with a progress bar; `every` (called each second) describes what is happening."""
    steps = max(1, int(seconds))
    bar: Any = click.progressbar(
        length=steps,
        label=f"    {label}",
        show_eta=True,
        item_show_func=(lambda _: every()) if every is not None else None,
    )
    with bar as progress:
        for _ in range(steps):
            time.sleep(seconds / steps)
            progress.update(1, current_item=steps)
