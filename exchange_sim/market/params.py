"""Parameters of the synthetic market (docs/exchange_sim_market.md §6–§12), as frozen dataclasses with validation.

Every figure the generator uses lives here with the design's default, so that a run is a pure function
of ``(seed, MarketConfig)``. Sizes are in base units (BTC, ETH, SOL) and prices in USDT; the generator
converts them to lots and ticks of the instrument once, at construction. Each ``__post_init__`` refuses
a bad value with an error naming the field and the value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

REGIMES = ("calm", "trending", "volatile")


def _positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"{owner}.{name} must be a positive finite number, got {value!r}")


def _non_negative(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{owner}.{name} must be a non-negative finite number, got {value!r}")


def _unit(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, int | float) and 0 <= value <= 1):
            raise ValueError(f"{owner}.{name} must lie in [0, 1], got {value!r}")


@dataclass(frozen=True, slots=True)
class RegimeParams:
    """One regime's latent-price and flow parameters (docs/exchange_sim_market.md §6 and §8 tables)."""

    sigma: float  # volatility of log V per sqrt(second), before the symbol scale
    drift: float  # |mu| per second; the sign is drawn at entry into the regime
    jumps_per_hour: float
    jump_scale: float  # Laplace scale b of a jump in log V
    mean_minutes: float  # mean holding time
    next: Mapping[str, float]  # embedded chain: probabilities of the next regime
    market_orders: float  # lambda_M, market orders per second
    informed: float  # phi, informed share of market-order direction
    touch_size: float  # u_k, multiplier of the touch target

    def __post_init__(self) -> None:
        _positive(
            "RegimeParams", sigma=self.sigma, mean_minutes=self.mean_minutes, touch_size=self.touch_size
        )
        _non_negative(
            "RegimeParams",
            drift=self.drift,
            jumps_per_hour=self.jumps_per_hour,
            jump_scale=self.jump_scale,
            market_orders=self.market_orders,
        )
        _unit("RegimeParams", informed=self.informed)
        unknown = [k for k in self.next if k not in REGIMES]
        if unknown:
            raise ValueError(f"RegimeParams.next names unknown regimes {unknown}; known: {REGIMES}")
        if any(p < 0 for p in self.next.values()) or abs(sum(self.next.values()) - 1) > 1e-9:
            raise ValueError(f"RegimeParams.next must be probabilities summing to 1, got {dict(self.next)}")


DEFAULT_REGIMES: Mapping[str, RegimeParams] = {
    "calm": RegimeParams(6.0e-5, 0.0, 2, 8e-4, 40, {"trending": 0.6, "volatile": 0.4}, 3, 0.5, 1.0),
    "trending": RegimeParams(9.0e-5, 1.5e-6, 4, 1e-3, 20, {"calm": 0.6, "volatile": 0.4}, 6, 0.6, 0.8),
    "volatile": RegimeParams(1.9e-4, 0.0, 12, 2e-3, 10, {"calm": 0.7, "trending": 0.3}, 15, 0.5, 0.4),
}


@dataclass(frozen=True, slots=True)
class SymbolParams:
    """Per-symbol scales (docs/exchange_sim_market.md §6 and §8): start price, touch and background depth profile."""

    start_price: float
    vol_scale: float  # m_sym
    factor_loading: float  # rho_sym, loading on the shared market factor
    touch_target: float  # q_bar, base units
    touch_order: float  # s_bar, mean touch order size, base units
    market_median: float  # median market-order size, base units
    market_sigma: float  # sigma of log market-order size
    n_near: float  # background orders per tick near the touch ...
    n_far: float  # ... and far from it
    s_near: float  # background order size near the touch (base units) ...
    s_far: float  # ... and far from it
    d0: float  # profile length in ticks
    # Typical traded volume of one calm minute (base units), for the kline history the exchange serves
    # at start (docs/exchange_sim_market.md §13); None: 25 touch targets. The defaults are the live market's calm figures.
    minute_volume: float | None = None

    def __post_init__(self) -> None:
        if self.minute_volume is not None:
            _positive("SymbolParams", minute_volume=self.minute_volume)
        _positive(
            "SymbolParams",
            start_price=self.start_price,
            vol_scale=self.vol_scale,
            touch_target=self.touch_target,
            touch_order=self.touch_order,
            market_median=self.market_median,
            n_near=self.n_near,
            n_far=self.n_far,
            s_near=self.s_near,
            s_far=self.s_far,
            d0=self.d0,
        )
        _non_negative("SymbolParams", market_sigma=self.market_sigma)
        _unit("SymbolParams", factor_loading=self.factor_loading)


DEFAULT_SYMBOLS: Mapping[str, SymbolParams] = {
    "BTCUSDT": SymbolParams(
        64_000, 1.0, 0.9, 4.0, 0.25, 0.01, 2.0, 0.8, 3.0, 0.02, 0.14, 60, minute_volume=100
    ),
    "ETHUSDT": SymbolParams(
        3_400, 1.2, 0.85, 40.0, 2.5, 0.1, 2.0, 0.6, 3.0, 0.3, 8.0, 40, minute_volume=3_300
    ),
    "SOLUSDT": SymbolParams(
        150, 1.4, 0.75, 900.0, 60.0, 3.0, 2.0, 6.0, 8.0, 300.0, 300.0, 10, minute_volume=9_000
    ),
}


@dataclass(frozen=True, slots=True)
class ShiftParams:
    """The scheduled regime shift (docs/exchange_sim_market.md §7): multipliers applied from ``at_ms`` on."""

    at_ms: int | None = None  # exchange time in ms; None = no shift
    sigma: float = 1.8
    market_orders: float = 2.0
    touch_target: float = 0.5

    def __post_init__(self) -> None:
        if self.at_ms is not None and (not isinstance(self.at_ms, int) or self.at_ms < 0):
            raise ValueError(
                f"ShiftParams.at_ms must be a non-negative int of exchange ms, got {self.at_ms!r}"
            )
        _positive(
            "ShiftParams", sigma=self.sigma, market_orders=self.market_orders, touch_target=self.touch_target
        )


@dataclass(frozen=True, slots=True)
class LatentParams:
    """The hidden fair value process (docs/exchange_sim_market.md §6)."""

    step_ms: int = 50
    vol_taus: tuple[float, float, float] = (120.0, 1800.0, 43_200.0)  # seconds
    vol_etas: tuple[float, float, float] = (0.3, 0.5, 0.6)
    alpha_tau: float = 90.0  # seconds
    c_alpha: float = 0.35
    jump_kick: float = 0.5  # added to the fast log-vol component j after a jump

    def __post_init__(self) -> None:
        if not isinstance(self.step_ms, int) or self.step_ms <= 0:
            raise ValueError(f"LatentParams.step_ms must be a positive int, got {self.step_ms!r}")
        if len(self.vol_taus) != 3 or len(self.vol_etas) != 3:
            raise ValueError("LatentParams.vol_taus and vol_etas must have three components each")
        for tau in self.vol_taus:
            _positive("LatentParams", vol_taus=tau)
        for eta in self.vol_etas:
            _non_negative("LatentParams", vol_etas=eta)
        _positive("LatentParams", alpha_tau=self.alpha_tau)
        _non_negative("LatentParams", c_alpha=self.c_alpha, jump_kick=self.jump_kick)


@dataclass(frozen=True, slots=True)
class TouchParams:
    """Queue-reactive events near the touch (docs/exchange_sim_market.md §8)."""

    beta: float = 1.0  # lean of touch targets on the gap G
    gamma_alpha: float = 0.4  # lean of touch targets on alpha
    kappa: float = 1.5  # informed direction on G
    kappa_alpha: float = 0.6  # informed direction on alpha
    k_add: float = 1.5
    k_cancel: float = 1.5
    base_add: float = 0.2  # per second, always on
    base_cancel: float = 0.05  # per second and per touch order
    churn: float = 0.0  # c: extra add and cancel rate per side (touch flicker)
    sweep_rate: float = 1.0  # nu_s: sweep hazard per second is nu_s * G^2
    sweep_pull: float = 0.8  # psi: share of the stale side cancelled (not traded) by a sweep
    fill_rate: float = 300.0  # lambda_fill: in-spread quotes per second while the spread is wide
    quote_multiple: float = 3.0  # an in-spread quote is this many s_bar
    tau_lag: float = 1.0  # seconds: the gap scale g = sigma * P/tick * sqrt(tau_lag)
    touch_size_sigma: float = 0.8  # sigma of log size of touch adds and cancels
    max_sweep_fraction: float = 0.5  # a sweep or market order walks at most this share of the depth D
    # Optional order-sign memory (docs/exchange_sim_market.md §8): market orders continue the current metaorder with
    # probability metaorder_continue; metaorder lengths are Pareto with tail exponent metaorder_tail, so
    # the sign autocorrelation decays like a power law (Lillo, Mike & Farmer 2005).
    metaorders: bool = False
    metaorder_continue: float = 0.8
    metaorder_tail: float = 1.5

    def __post_init__(self) -> None:
        _non_negative(
            "TouchParams",
            beta=self.beta,
            gamma_alpha=self.gamma_alpha,
            kappa=self.kappa,
            kappa_alpha=self.kappa_alpha,
            k_add=self.k_add,
            k_cancel=self.k_cancel,
            base_cancel=self.base_cancel,
            churn=self.churn,
            sweep_rate=self.sweep_rate,
            fill_rate=self.fill_rate,
            touch_size_sigma=self.touch_size_sigma,
        )
        # A positive base add rate keeps the total event rate above zero, which the event loop relies on.
        _positive(
            "TouchParams", base_add=self.base_add, quote_multiple=self.quote_multiple, tau_lag=self.tau_lag
        )
        _unit(
            "TouchParams",
            sweep_pull=self.sweep_pull,
            max_sweep_fraction=self.max_sweep_fraction,
            metaorder_continue=self.metaorder_continue,
        )
        _positive("TouchParams", metaorder_tail=self.metaorder_tail)


@dataclass(frozen=True, slots=True)
class BackgroundParams:
    """The background book behind the touch (docs/exchange_sim_market.md §9–§10)."""

    depth: int = 1200  # D: maintained ticks per side
    batch_ms: int = 100  # Delta_b
    lifetime_near: float = 2.0  # T(d) = near + extra * w(d), seconds
    lifetime_extra: float = 28.0
    stale_tau: float = 0.5  # seconds: time constant of the cut of volume above cap(d)
    tilt: float = 0.6  # beta_d: alpha tilt of patient orders ...
    tilt_ticks: int = 100  # ... within this many ticks of the touch
    empty_boost: float = 10.0  # arrival boost on empty levels (replenishment after sweeps)
    size_sigma: float = 0.5  # sigma of the mean-one log-normal size factor of arrivals
    min_levels: int = 300  # L_min: hole seeding below this many non-empty levels
    hole_from: int = 20  # hole seeding only beyond this many ticks from the touch
    trim_margin: int = 200  # ticks beyond D kept before anonymous volume is dropped (hysteresis)
    window: int = 32_768  # W: ticks in the dense mirror arrays

    def __post_init__(self) -> None:
        for name in ("depth", "batch_ms", "tilt_ticks", "min_levels", "hole_from", "trim_margin", "window"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"BackgroundParams.{name} must be a positive int, got {value!r}")
        _positive(
            "BackgroundParams",
            lifetime_near=self.lifetime_near,
            stale_tau=self.stale_tau,
            empty_boost=self.empty_boost,
        )
        _non_negative(
            "BackgroundParams", lifetime_extra=self.lifetime_extra, tilt=self.tilt, size_sigma=self.size_sigma
        )
        if self.window < 4 * (self.depth + self.trim_margin):
            raise ValueError(
                f"BackgroundParams.window ({self.window}) must be at least 4 * (depth + trim_margin) "
                f"= {4 * (self.depth + self.trim_margin)} ticks"
            )
        if self.min_levels > self.depth:
            raise ValueError(f"BackgroundParams.min_levels ({self.min_levels}) exceeds depth ({self.depth})")


@dataclass(frozen=True, slots=True)
class ManipulationParams:
    """Scripted spoofing, layering and benign look-alikes (docs/exchange_sim_market.md §12)."""

    enabled: bool = True
    spoof_per_hour: float = 4.0
    layering_per_hour: float = 2.0
    benign_per_hour: float = 4.0  # split evenly between walls and stacks
    gullibility: float = 0.1  # shift of the market-order buy probability while a fake bid rests
    escape: float = 0.9  # probability a manipulative order is pulled before a sweep reaches it
    spoof_notional: float = 50_000.0  # USDT; spoof size is at least 1.2x this
    layer_notional: float = 20_000.0  # USDT; each layering order is at least this
    genuine_share: float = 0.5  # layering episodes with a genuine opposite-side order

    def __post_init__(self) -> None:
        _non_negative(
            "ManipulationParams",
            spoof_per_hour=self.spoof_per_hour,
            layering_per_hour=self.layering_per_hour,
            benign_per_hour=self.benign_per_hour,
        )
        _positive(
            "ManipulationParams", spoof_notional=self.spoof_notional, layer_notional=self.layer_notional
        )
        _unit(
            "ManipulationParams",
            gullibility=self.gullibility,
            escape=self.escape,
            genuine_share=self.genuine_share,
        )


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """Everything that defines a synthetic market besides the seed and the instruments."""

    regimes: Mapping[str, RegimeParams] = field(default_factory=lambda: dict(DEFAULT_REGIMES))
    regimes_enabled: bool = True
    fixed_regime: str | None = None  # pin one regime (drift tests); implies no switching
    start_regime: str = "calm"
    symbols: Mapping[str, SymbolParams] = field(default_factory=lambda: dict(DEFAULT_SYMBOLS))
    latent: LatentParams = field(default_factory=LatentParams)
    touch: TouchParams = field(default_factory=TouchParams)
    background: BackgroundParams = field(default_factory=BackgroundParams)
    shift: ShiftParams = field(default_factory=ShiftParams)
    manipulation: ManipulationParams = field(default_factory=ManipulationParams)
    mark_tau: float = 1.0  # seconds: mark price = EWMA of the mid
    index_tau: float = 5.0  # seconds: index price = EWMA of V
    premium_tau: float = 3600.0  # seconds: averaging of the premium index for the funding rate
    ground_truth_path: str | None = None  # also append each finished episode as JSONL here
    # A clock jump longer than this (ms of exchange time) is not simulated: the market pauses across the
    # excess and simulates only the last max_catchup_ms, so a jump of hours cannot stall the venue's
    # driver for minutes. None simulates every jump in full.
    max_catchup_ms: int | None = 120_000
    # One-minute klines served as history at start (docs/exchange_sim_market.md §13), ending at the minute before the
    # start; 0 disables. The venue keeps the newest 1500 of each interval.
    history_minutes: int = 1000

    def __post_init__(self) -> None:
        missing = [k for k in REGIMES if k not in self.regimes]
        if missing:
            raise ValueError(f"MarketConfig.regimes lacks {missing}; it needs all of {REGIMES}")
        for name in ("fixed_regime", "start_regime"):
            value = getattr(self, name)
            if value is not None and value not in REGIMES:
                raise ValueError(f"MarketConfig.{name} must be one of {REGIMES}, got {value!r}")
        _positive(
            "MarketConfig", mark_tau=self.mark_tau, index_tau=self.index_tau, premium_tau=self.premium_tau
        )
        minutes = self.history_minutes
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0:
            raise ValueError(f"MarketConfig.history_minutes must be a non-negative int, got {minutes!r}")
        limit = self.max_catchup_ms
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
            raise ValueError(f"MarketConfig.max_catchup_ms must be a positive int or None, got {limit!r}")
        if self.background.batch_ms % self.latent.step_ms and self.latent.step_ms % self.background.batch_ms:
            # Grids that nest keep boundary times exact multiples of each other (no float drift).
            raise ValueError(
                f"background.batch_ms ({self.background.batch_ms}) and latent.step_ms ({self.latent.step_ms}) "
                "must divide one another"
            )

    def symbol(self, symbol: str) -> SymbolParams:
        """The parameters of ``symbol``; a symbol without any is an error naming the known ones."""
        params = self.symbols.get(symbol)
        if params is None:
            raise ValueError(
                f"no synthetic-market parameters for symbol {symbol!r}; configured: {sorted(self.symbols)}"
            )
        return params
