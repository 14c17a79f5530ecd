"""The raw snapshot recorder: batched, idempotent writes of market data with a local spool."""

from trading_daemon.recorder.channel import RecorderConfig, is_transient
from trading_daemon.recorder.recorder import (
    KINDS,
    KindStats,
    Recorder,
    RecorderStats,
    open_recorder_pool,
)
from trading_daemon.recorder.spool import Spool

__all__ = [
    "KINDS",
    "KindStats",
    "Recorder",
    "RecorderConfig",
    "RecorderStats",
    "Spool",
    "is_transient",
    "open_recorder_pool",
]
