"""Which strategies vote and how their votes combine, and what trading costs (docs/strategies.md).

Each strategy's own parameters, and the StrategyConfig built from all of them, are in
`infra.settings_fields.strategy_params`.
"""

from __future__ import annotations

from pydantic import BaseModel, field_validator

from infra.configs import STRATEGY_NAMES, ConsensusMode, parse_strategy_names, parse_strategy_weights
from infra.settings_fields.base import setting


class StrategyConsensusFields(BaseModel):
    """The strategies that vote, their consensus and the cost model of their signals (issue 12)."""

    enabled_strategies: str = setting(
        ",".join(STRATEGY_NAMES),
        "ENABLED_STRATEGIES",
        "strategies",
        "Comma-separated strategies that vote at start: imbalance, momentum, sar_wave, supertrend, "
        "volume_profile (each can be enabled or disabled at run time).",
    )
    consensus_mode: ConsensusMode = setting(
        "weighted",
        "CONSENSUS_MODE",
        "strategies",
        "How the strategies' votes combine: majority (more agreeing than opposing votes), weighted "
        "(STRATEGY_WEIGHTS-weighted confidence against all votes) or unanimous (no opposing vote).",
    )
    min_strategies: int = setting(
        2, "MIN_STRATEGIES", "strategies", "Strategies that must agree for a consensus signal.", ge=1
    )
    min_consensus_confidence: float = setting(
        0.6,
        "MIN_CONSENSUS_CONFIDENCE",
        "strategies",
        "A consensus below this confidence sends no signal.",
        ge=0,
        le=1,
    )
    strategy_weights: str = setting(
        "",
        "STRATEGY_WEIGHTS",
        "strategies",
        "Vote weights in weighted consensus, e.g. momentum:1.5,imbalance:0.5 (strategies not named: 1).",
    )
    strategy_atr_period: int = setting(
        14,
        "STRATEGY_ATR_PERIOD",
        "strategies",
        "ATR period of the momentum, SAR wave and volume profile stops.",
        ge=1,
    )
    taker_fee_bps: float = setting(
        5.5, "TAKER_FEE_BPS", "strategy costs", "Taker fee per side, in bps of notional (Bybit: 5.5).", ge=0
    )
    maker_fee_bps: float = setting(
        2.0, "MAKER_FEE_BPS", "strategy costs", "Maker fee per side, in bps of notional (Bybit: 2).", ge=0
    )
    min_expected_edge_bps: float = setting(
        0.0,
        "MIN_EXPECTED_EDGE_BPS",
        "strategy costs",
        "A signal is sent only if its expected edge after fees and spread (bps) is at least this.",
    )
    edge_prior_signals: int = setting(
        20,
        "EDGE_PRIOR_SIGNALS",
        "strategy costs",
        "Weight, in signals, of the model estimate of a strategy's edge against its measured signal "
        "outcomes: after this many outcomes the two count equally.",
        ge=0,
    )

    @field_validator("enabled_strategies")
    @classmethod
    def _strategies_known(cls, value: str) -> str:
        return ",".join(parse_strategy_names(value))  # raises naming an unknown strategy

    @field_validator("strategy_weights")
    @classmethod
    def _weights_parse(cls, value: str) -> str:
        parse_strategy_weights(value)  # raises naming the bad entry
        return value
