"""The ML gate: the production model (hot-swapped on promotion) validating the strategies' consensus.

`MLGate` serves predictions row by row off the event loop, `SignalValidator` turns a prediction and a
consensus signal into a verdict (agree, disagree, neutral, fallback), `PromotionWatcher` follows
`model_promoted`. See docs/decisions.md.
"""

from trading_daemon.ml_gate.gate import MLGate
from trading_daemon.ml_gate.prediction import FallbackReason, GatePrediction
from trading_daemon.ml_gate.served import ServedModel, load_served, predictor_for
from trading_daemon.ml_gate.validator import SignalValidator, Validation, Verdict
from trading_daemon.ml_gate.watcher import PromotionWatcher

__all__ = [
    "FallbackReason",
    "GatePrediction",
    "MLGate",
    "PromotionWatcher",
    "ServedModel",
    "SignalValidator",
    "Validation",
    "Verdict",
    "load_served",
    "predictor_for",
]
