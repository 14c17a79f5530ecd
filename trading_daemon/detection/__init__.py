"""Manipulation and support/resistance detection (docs/detection.md).

`DetectionService` runs, per symbol, a large-order tracker over every applied book message, the
spoofing and layering detectors over the orders it sees leave, and the support/resistance detector
over closed candles; `blocked(symbol, now_ms)` is the entry block the decisions obey. `evaluation`
scores detections against the paper exchange's ground-truth episodes.
"""

from schemas.detection import Detection, DetectionKind, LevelKind, SupportResistanceLevel
from trading_daemon.detection.service import DetectionService, DetectionStatus, SymbolDetectionStatus
from trading_daemon.detection.store import DetectionStore, StoreStats

__all__ = [
    "Detection",
    "DetectionKind",
    "DetectionService",
    "DetectionStatus",
    "DetectionStore",
    "LevelKind",
    "StoreStats",
    "SupportResistanceLevel",
    "SymbolDetectionStatus",
]
