"""The offline recorder: the paper exchange's synthetic market recorded through the daemon's own parsing
and `MarketFeed` on virtual exchange time, without sockets (`depthcharge record-sim`, the ML tests'
recorded fixtures, the demo and the benchmarks).

It needs both `exchange_sim` and `trading_daemon`, which must not import each other, so it lives with
the command line, the one package that may join them. `in_process.py` holds the exchange's public side
in-process on a virtual clock; `recorder.py` steps it and collects what the daemon's feed builds.
"""

from depthcharge.offline_recording.in_process import (
    InProcessCandleSource,
    InProcessPublicStream,
    SimRecordingError,
    VirtualClock,
)
from depthcharge.offline_recording.recorder import (
    DEFAULT_START_MS,
    SimGroundTruth,
    SimRecording,
    record_synthetic,
    record_synthetic_async,
)

__all__ = [
    "DEFAULT_START_MS",
    "InProcessCandleSource",
    "InProcessPublicStream",
    "SimGroundTruth",
    "SimRecording",
    "SimRecordingError",
    "VirtualClock",
    "record_synthetic",
    "record_synthetic_async",
]
