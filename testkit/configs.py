"""Component configs for tests and benchmarks: the settings' code defaults, nothing from the environment."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from infra.settings import FeedConfig, code_defaults


def feed_config(symbols: Sequence[str], **changes: Any) -> FeedConfig:
    """`FeedConfig` of the default settings for `symbols`, with `changes` (field names) applied."""
    return dataclasses.replace(code_defaults().feed, symbols=tuple(symbols), **changes)
