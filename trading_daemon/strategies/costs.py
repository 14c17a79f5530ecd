"""Costs are part of the decision (docs/strategies.md §4): what a round trip costs, and what a signal is
expected to earn before it.

**Cost** of a round trip, in bps of the notional:

    entry: MAKER_FEE_BPS for a maker entry (PostOnly at the touch: no spread crossed),
           TAKER_FEE_BPS + spread/2 for a taker entry;
    exit:  TAKER_FEE_BPS + spread/2, always: stops, reversals and time exits leave by market order.

So taker in and out costs 11 bps plus the spread on Bybit, maker in and taker out 7.5 bps plus half of it.

**Expected gross edge** of a signal, in bps before costs, blends a model with the strategy's own record:

    prior = p · min(TP, M) − (1 − p) · min(SL, M)
    gross = (n · measured + n0 · prior) / (n + n0)

`p` is the signal's confidence read as the probability that the price moves its way; TP and SL are the
signal's take-profit and stop-loss distances; M is the typical absolute move over the strategy's horizon h,
√(2/π)·σ_h (the mean absolute value of a normal move), σ_h = σ_1m·√(h/60) from the one-minute candles'
realized volatility (the row-level σ_1s·√h while fewer than 21 candles exist): a target beyond the typical
move is not counted at its full distance. `measured` is the mean signed mid move that followed the
strategy's past `n` signals, each followed to its own target, stop or horizon whether traded or not
(`trading_daemon.strategies.statistics`), and n0 = EDGE_PRIOR_SIGNALS: the model is trusted as much as n0
outcomes, the record takes over as outcomes accumulate.

**Expected edge** = gross − cost. A signal is sent only if it is at least MIN_EXPECTED_EDGE_BPS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from infra.settings import CostConfig
from schemas.enums import EntryStyle
from trading_daemon.analysis.records import MarketAnalysis

_MEAN_ABS_NORMAL = math.sqrt(2 / math.pi)

EDGE_METHOD = (
    "gross = (n*measured + n0*prior)/(n + n0), prior = p*min(TP, M) - (1-p)*min(SL, M), p = confidence, "
    "M = sqrt(2/pi)*sigma over the horizon; net = gross - round-trip fees and spread"
)


@dataclass(frozen=True, slots=True)
class EdgeEstimate:
    """A signal's expected edge and how it was reached (all in bps of the notional)."""

    net_bps: float  # expected edge after fees and spread
    gross_bps: float
    cost_bps: float
    prior_bps: float
    measured_mean_bps: float | None
    measured_n: int
    typical_move_bps: float

    def context(self) -> dict[str, Any]:
        """The fields a signal's context carries (docs/strategies.md §4)."""
        return {
            "expected_edge_bps": round(self.net_bps, 4),
            "gross_edge_bps": round(self.gross_bps, 4),
            "cost_bps": round(self.cost_bps, 4),
            "edge": {
                "method": EDGE_METHOD,
                "prior_bps": round(self.prior_bps, 4),
                "measured_mean_bps": None
                if self.measured_mean_bps is None
                else round(self.measured_mean_bps, 4),
                "measured_signals": self.measured_n,
                "typical_move_bps": round(self.typical_move_bps, 4),
            },
        }


class CostModel:
    """Round-trip costs by entry style and the expected edge of signals (see the module docstring)."""

    def __init__(self, config: CostConfig) -> None:
        for name in ("taker_fee_bps", "maker_fee_bps"):
            value = getattr(config, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name.upper()} must be finite and >= 0, got {value}")
        if config.edge_prior_signals < 0:
            raise ValueError(f"EDGE_PRIOR_SIGNALS must be >= 0, got {config.edge_prior_signals}")
        self.config = config

    def round_trip_bps(self, style: EntryStyle, spread_bps: float) -> float:
        """Fees of both sides plus the spread crossed, for an entry of `style` and a taker exit."""
        half_spread = max(0.0, spread_bps) / 2
        entry = (
            self.config.maker_fee_bps
            if style is EntryStyle.MAKER
            else self.config.taker_fee_bps + half_spread
        )
        return entry + self.config.taker_fee_bps + half_spread

    @staticmethod
    def typical_move_bps(analysis: MarketAnalysis, horizon_s: float) -> float:
        """√(2/π)·σ over `horizon_s`: the mean absolute move of a driftless price over the horizon."""
        if analysis.volatility_1m_bps > 0:
            sigma = analysis.volatility_1m_bps * math.sqrt(horizon_s / 60)
        else:
            sigma = analysis.volatility_1s_bps * math.sqrt(horizon_s)
        return _MEAN_ABS_NORMAL * sigma

    def prior_bps(
        self, confidence: float, take_profit_bps: float, stop_loss_bps: float, typical_move_bps: float
    ) -> float:
        """p·min(TP, M) − (1 − p)·min(SL, M)."""
        return confidence * min(take_profit_bps, typical_move_bps) - (1 - confidence) * min(
            stop_loss_bps, typical_move_bps
        )

    def blend(self, prior: float, measured_mean: float | None, measured_n: int) -> float:
        """(n·measured + n0·prior)/(n + n0)."""
        n0 = self.config.edge_prior_signals
        if measured_mean is None or measured_n == 0:
            return prior
        return (measured_n * measured_mean + n0 * prior) / (measured_n + n0)

    def estimate(
        self,
        *,
        analysis: MarketAnalysis,
        style: EntryStyle,
        confidence: float,
        take_profit_bps: float,
        stop_loss_bps: float,
        horizon_s: float,
        measured_mean: float | None,
        measured_n: int,
    ) -> EdgeEstimate:
        move = self.typical_move_bps(analysis, horizon_s)
        prior = self.prior_bps(confidence, take_profit_bps, stop_loss_bps, move)
        gross = self.blend(prior, measured_mean, measured_n)
        cost = self.round_trip_bps(style, analysis.spread_bps)
        return EdgeEstimate(gross - cost, gross, cost, prior, measured_mean, measured_n, move)

    def covers(self, estimate: EdgeEstimate) -> bool:
        """Whether the signal may be sent: its expected edge reaches MIN_EXPECTED_EDGE_BPS."""
        return estimate.net_bps >= self.config.min_expected_edge_bps
