"""The raw snapshot recorder: batched, idempotent writes of market data with a local spool."""

from trading_daemon.recorder.channel import RecorderConfig, database_down
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
    "database_down",
    "open_recorder_pool",
]
