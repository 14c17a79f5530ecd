"""The decision engine: rows → analysis, strategies, detectors, the ML gate, risk → trade intents; and the
background writer of signals, predictions and audit rows. See docs/decisions.md."""

from trading_daemon.decisions.engine import DecisionEngine
from trading_daemon.decisions.records import ArrivalStamp, Decision, RowTicket
from trading_daemon.decisions.writer import BatchWriter

__all__ = ["ArrivalStamp", "BatchWriter", "Decision", "DecisionEngine", "RowTicket"]
