"""What every strategy shares: the interface, the candle arrays, and how entry and exit signals are built.

A strategy is a pure rule over the newest :class:`MarketAnalysis` of a symbol, its closed one-minute candles
(oldest first, as `trading_daemon.market.candles.CandleStore.window` gives them) and the open position:

* :meth:`Strategy.analyze` votes: a BUY or SELL `Signal` while its entry rule holds, else None. The vote does
  not depend on the position, so that votes, consensus and measured outcomes mean the same whether or not
  the account holds one; what to do with a vote is the manager's and the decision engine's business.
* :meth:`Strategy.exit_signal` says when a position should be closed by this strategy's rules (its stop,
  target, trailing stop, reversal or maximum hold): a Signal of the closing side, or None.

Entry signals carry in `context` what the cost filter and execution need: `kind` ("entry"), `entry_style`
(taker or maker), `stop_loss` and `take_profit` prices, `horizon_s` (the maximum hold, over which its
outcome is measured), and the indicator values the rule read. Exit signals carry `kind` ("exit"), `rule`
and `reduce_only` (docs/strategies.md §2, §3).

Indicators come from TA-Lib over float64 arrays of the candles; computing them once per candle state (not
once per row) is what :class:`CandleCache` is for. A strategy that reads them derives from
:class:`CandleStrategy` (its config, that cache, no vote until the indicators are ready) and supplies only
its own parts: `compute_indicators`, `vote` and `exit_signal`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np

from schemas.enums import EntryStyle, Side, SignalAction
from schemas.market import Candle
from schemas.trading import Position, Signal
from trading_daemon.analysis.records import MarketAnalysis

T = TypeVar("T")
ConfigT = TypeVar("ConfigT", bound="StrategySettings")
IndicatorsT = TypeVar("IndicatorsT", bound="Indicators")

_ARRAY_CACHE_SIZE = 64


@dataclass(frozen=True, slots=True, eq=False)
class CandleArrays:
    """The candles as float64 arrays, oldest first (read-only)."""

    start_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.close)


def candle_key(candles: Sequence[Candle]) -> tuple[Any, ...]:
    """Identifies a candle window: its symbol, span, length and newest values (closed candles are final;
    a corrected one changes the newest values or the length)."""
    if not candles:
        return ()
    last = candles[-1]
    return (last.symbol, candles[0].start_ms, last.start_ms, len(candles), last.close, last.volume, last.high)


_arrays: OrderedDict[tuple[Any, ...], CandleArrays] = OrderedDict()


def candle_arrays(candles: Sequence[Candle]) -> CandleArrays:
    """`candles` as arrays, converted once per window (the manager's strategies share them)."""
    key = candle_key(candles)
    cached = _arrays.get(key)
    if cached is not None:
        _arrays.move_to_end(key)
        return cached
    columns = {
        name: np.array([getattr(c, name) for c in candles], dtype=np.float64)
        for name in ("open", "high", "low", "close", "volume")
    }
    for values in columns.values():
        values.flags.writeable = False
    starts = np.array([c.start_ms for c in candles], dtype=np.int64)
    starts.flags.writeable = False
    arrays = CandleArrays(start_ms=starts, **columns)
    _arrays[key] = arrays
    if len(_arrays) > _ARRAY_CACHE_SIZE:
        _arrays.popitem(last=False)
    return arrays


class CandleCache(Generic[T]):
    """One computed value per symbol, recomputed only when that symbol's candle window changes."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[tuple[Any, ...], T]] = {}

    def get(self, symbol: str, candles: Sequence[Candle], compute: Callable[[CandleArrays], T]) -> T:
        key = candle_key(candles)
        held = self._values.get(symbol)
        if held is not None and held[0] == key:
            return held[1]
        value = compute(candle_arrays(candles))
        self._values[symbol] = (key, value)
        return value


def last(values: np.ndarray) -> float:
    """The newest value of an indicator output (NaN while the indicator has too few candles)."""
    return float(values[-1]) if len(values) else math.nan


def to_price(value: float) -> Decimal:
    """A float price as the Decimal a Signal carries (the decision engine rounds it to the tick)."""
    return Decimal(repr(float(value)))


def bps(move: float, price: float) -> float:
    """`move` (a price difference) in bps of `price`."""
    return 1e4 * move / price if price > 0 else 0.0


def clamp01(x: float) -> float:
    return min(1.0, max(0.0, x))


def position_is_long(position: Position) -> bool:
    return position.side is Side.BUY


def held_ms(position: Position, now_ms: int) -> int:
    """How long the position has been open at `now_ms` (0 when its opening time is unknown)."""
    opened = position.opened_ms or position.created_ms
    return max(0, now_ms - opened) if opened else 0


def candles_since(candles: Sequence[Candle], since_ms: int | None) -> list[Candle]:
    """The candles that started at or after `since_ms` (whole minutes after an entry)."""
    if since_ms is None:
        return []
    return [c for c in candles if c.start_ms >= since_ms]


class Strategy(ABC):
    """One strategy: an entry vote and exit rules (see the module docstring)."""

    name: ClassVar[str]

    def __init__(self, *, entry_style: EntryStyle, max_hold_s: float) -> None:
        if not max_hold_s > 0:
            raise ValueError(f"{self.name}: max_hold_s must be > 0, got {max_hold_s}")
        self.entry_style = entry_style
        self.max_hold_s = max_hold_s

    @abstractmethod
    def analyze(
        self, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position | None
    ) -> Signal | None:
        """The strategy's entry vote at this row, or None."""

    @abstractmethod
    def exit_signal(
        self, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position
    ) -> Signal | None:
        """A signal to close `position` by this strategy's rules, or None."""

    # -- building signals ----------------------------------------------------------------------------

    def entry_price(self, analysis: MarketAnalysis, buy: bool) -> float:
        """Where an entry would fill: the touch for a maker entry (PostOnly), the mid for a taker's."""
        return analysis.touch(buy) if self.entry_style is EntryStyle.MAKER else analysis.mid

    def entry(
        self,
        analysis: MarketAnalysis,
        buy: bool,
        *,
        strength: float,
        confidence: float,
        stop_loss: float,
        take_profit: float,
        reason: str,
        indicators: dict[str, float],
    ) -> Signal | None:
        """An entry vote; None when its stop and target do not lie on the two sides of the entry price."""
        price = self.entry_price(analysis, buy)
        if not (price > 0 and math.isfinite(stop_loss) and math.isfinite(take_profit)):
            return None
        if (buy and not stop_loss < price < take_profit) or (not buy and not take_profit < price < stop_loss):
            return None
        return Signal(
            symbol=analysis.symbol,
            ts=analysis.ts,
            source=self.name,
            action=SignalAction.BUY if buy else SignalAction.SELL,
            strength=clamp01(strength),
            confidence=clamp01(confidence),
            price=to_price(price),
            reason=reason,
            context={
                "kind": "entry",
                "entry_style": str(self.entry_style),
                "stop_loss": stop_loss,
                "take_profit": take_profit,
                "horizon_s": self.max_hold_s,
                "indicators": {k: round(v, 8) for k, v in indicators.items() if math.isfinite(v)},
            },
        )

    def exit(
        self, analysis: MarketAnalysis, position: Position, rule: str, reason: str, **values: float
    ) -> Signal:
        """A signal to close `position` (the opposite side, reduce-only), naming the rule that fired."""
        long = position_is_long(position)
        return Signal(
            symbol=analysis.symbol,
            ts=analysis.ts,
            source=self.name,
            action=SignalAction.SELL if long else SignalAction.BUY,
            strength=1.0,
            confidence=1.0,
            price=to_price(analysis.mid),
            reason=reason,
            context={"kind": "exit", "rule": rule, "reduce_only": True, **values},
        )

    def max_hold_exit(self, analysis: MarketAnalysis, position: Position) -> Signal | None:
        """The exit every strategy has: the position outlived the strategy's maximum hold."""
        held = held_ms(position, analysis.ts)
        if held >= self.max_hold_s * 1000:
            return self.exit(
                analysis, position, "max_hold", f"held {held / 1000:.0f} s >= {self.max_hold_s:.0f} s"
            )
        return None

    def price_exit(
        self, analysis: MarketAnalysis, position: Position, stop: float | None, target: float | None
    ) -> Signal | None:
        """Stop-loss or take-profit on the mid, for a long or a short."""
        long, mid = position_is_long(position), analysis.mid
        if stop is not None and (mid <= stop if long else mid >= stop):
            return self.exit(analysis, position, "stop_loss", f"mid {mid} crossed the stop {stop}", stop=stop)
        if target is not None and (mid >= target if long else mid <= target):
            return self.exit(
                analysis, position, "take_profit", f"mid {mid} reached the target {target}", target=target
            )
        return None


class StrategySettings(Protocol):
    """What every strategy's config has (`infra.settings.MomentumConfig` and its siblings)."""

    @property
    def entry_style(self) -> EntryStyle: ...

    @property
    def max_hold_s(self) -> float: ...


class Indicators(Protocol):
    """A strategy's indicator values on the newest candle."""

    @property
    def ready(self) -> bool:
        """Whether the rules may read them (False while the candles are too few)."""
        ...


class CandleStrategy(Strategy, Generic[ConfigT, IndicatorsT]):
    """A strategy built from its config whose rules read indicators of the candles.

    A subclass supplies :meth:`compute_indicators`, its entry rule :meth:`vote` and :meth:`exit_signal`;
    :meth:`indicators` computes them once per symbol and candle window, and there is no vote while the
    analysis is invalid or the indicators are not ready.
    """

    def __init__(self, config: ConfigT) -> None:
        super().__init__(entry_style=config.entry_style, max_hold_s=config.max_hold_s)
        self.config = config
        self._indicators: CandleCache[IndicatorsT] = CandleCache()

    @abstractmethod
    def compute_indicators(self, k: CandleArrays) -> IndicatorsT:
        """The indicators on the newest candle of `k` under `self.config` (not ready while too few)."""

    @abstractmethod
    def vote(self, analysis: MarketAnalysis, ind: IndicatorsT) -> Signal | None:
        """The entry vote on a valid analysis with ready indicators, or None."""

    def indicators(self, symbol: str, candles: Sequence[Candle]) -> IndicatorsT:
        """The indicators of `symbol`'s `candles`, recomputed only when that window changes."""
        return self._indicators.get(symbol, candles, self.compute_indicators)

    def analyze(
        self, analysis: MarketAnalysis, candles: Sequence[Candle], position: Position | None
    ) -> Signal | None:
        ind = self.indicators(analysis.symbol, candles)
        if not (analysis.valid and ind.ready):
            return None
        return self.vote(analysis, ind)
