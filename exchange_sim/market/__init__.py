"""Synthetic market generator of the paper exchange (docs/exchange_sim_market.md)."""

from exchange_sim.market.generator import SyntheticMarket, build_market
from exchange_sim.market.params import (
    BackgroundParams,
    LatentParams,
    ManipulationParams,
    MarketConfig,
    RegimeParams,
    ShiftParams,
    SymbolParams,
    TouchParams,
)

__all__ = [
    "BackgroundParams",
    "LatentParams",
    "ManipulationParams",
    "MarketConfig",
    "RegimeParams",
    "ShiftParams",
    "SymbolParams",
    "SyntheticMarket",
    "TouchParams",
    "build_market",
]
