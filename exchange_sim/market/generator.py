"""The multi-symbol synthetic market: a :class:`~exchange_sim.venue.MarketSource` over the venue's engine.

:class:`SyntheticMarket` owns the market-wide state (regime chain, shared market factor) and one
:class:`~exchange_sim.market.flow.SymbolMarket` per symbol, each acting directly on the engine's book of
its symbol. Random streams come from one ``SeedSequence(seed)`` (docs/exchange_sim_market.md §14): the market-wide
streams under spawn key ``(0, …)`` and each symbol's four streams (latent, touch events, background,
manipulator) under a key derived from the symbol's name, so a symbol's hidden value path is the same
whichever other symbols run and whether or not manipulation is on. The kline history served at start
(:meth:`SyntheticMarket.kline_history`) has one more stream per symbol under ``(2, …)``, so the live
simulation does not depend on it. All generators are PCG64.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from numpy.random import PCG64, Generator, SeedSequence

from exchange_sim.book import BUY
from exchange_sim.klines import Candle
from exchange_sim.market.background import ASK, BID
from exchange_sim.market.flow import SymbolMarket
from exchange_sim.market.history import kline_history
from exchange_sim.market.latent import MarketFactor, RegimeChain
from exchange_sim.market.manipulator import Manipulator
from exchange_sim.market.params import ManipulationParams, MarketConfig, ShiftParams
from exchange_sim.matching import EngineResult, MatchingEngine

BASE_FUNDING_RATE = Decimal("0.0001")  # Bybit's interest component, for symbols this market does not run


def _gen(seed: int, *key: int) -> Generator:
    return Generator(PCG64(SeedSequence(seed, spawn_key=key)))


class SyntheticMarket:
    """Seeded synthetic order flow for several symbols (docs/exchange_sim_market.md), driven by ``advance(to_ms)``.

    The first :meth:`advance` call fixes the start time and seeds every book around its start price;
    later calls simulate up to the given exchange time. Construct one per engine: it installs itself as
    the engine's ``anonymous_fill_hook`` to keep its anonymous-volume mirror exact.
    """

    def __init__(
        self,
        engine: MatchingEngine,
        symbols: Iterable[str],
        seed: int = 42,
        config: MarketConfig | None = None,
    ) -> None:
        self.engine = engine
        self.config = config if config is not None else MarketConfig()
        self.symbols = list(symbols)
        if not self.symbols:
            raise ValueError("SyntheticMarket needs at least one symbol")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"SyntheticMarket symbols repeat: {self.symbols}")
        for symbol in self.symbols:
            if symbol not in engine.instruments:
                raise ValueError(
                    f"symbol {symbol!r} is not listed on the engine ({sorted(engine.instruments)})"
                )
            self.config.symbol(symbol)
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if engine.anonymous_fill_hook is not None:
            raise ValueError(
                "this engine already feeds another synthetic market (anonymous_fill_hook is set)"
            )
        engine.anonymous_fill_hook = self._on_fill
        self.seed = seed
        self.now: int | None = None
        self.chain: RegimeChain | None = None
        self.markets: dict[str, SymbolMarket] = {}
        self._gt_written: set[str] = set()
        self.skipped_ms = 0  # exchange time not simulated because of clock jumps (max_catchup_ms)

    # -- MarketSource --------------------------------------------------------------------------------

    def advance(self, to_ms: int) -> list[EngineResult]:
        """Simulate every symbol up to exchange time ``to_ms`` and return the engine results, per symbol."""
        out: list[EngineResult] = []
        if self.now is None:
            self._start(int(to_ms))
        elif to_ms > self.now:
            limit = self.config.max_catchup_ms
            if limit is not None and to_ms - self.now > limit:
                gap = int(to_ms) - self.now - limit
                for market in self.markets.values():
                    market.pause(gap)
                self.skipped_ms += gap
            end = float(to_ms)
            for market in self.markets.values():
                market.run_until(end, out)
            self.now = int(to_ms)
            self._factor.forget_before(min(m.latent.n for m in self.markets.values()))
        marks = self.engine.accounts.marks
        for symbol, market in self.markets.items():
            mark = market.mark_price()
            if marks.get(symbol) is not mark:  # the same object while the mark's tick holds
                self.engine.set_mark_price(symbol, mark)
        if self.config.ground_truth_path is not None:
            self._write_ground_truth(Path(self.config.ground_truth_path))
        return out

    def ground_truth(self) -> list[dict[str, Any]]:
        """Finished manipulation episodes (all symbols) as JSON-able dicts, by start time."""
        records = [r for m in self.markets.values() if m.manip is not None for r in m.manip.finished]
        return sorted(records, key=lambda r: (r["start_ms"], r["episode_id"]))

    def funding_rate(self, symbol: str) -> Decimal:
        """The funding rate implied by the averaged premium of mark over index (docs/exchange_sim_market.md §13)."""
        market = self.markets.get(symbol)
        return market.funding_rate() if market is not None else BASE_FUNDING_RATE

    def kline_history(self, before_ms: int) -> dict[str, list[Candle]]:
        """One-minute klines of every symbol ending at the minute before ``before_ms`` (docs/exchange_sim_market.md §13).

        ``config.history_minutes`` per symbol, oldest first, the last close at the start price where the
        live book opens; empty lists when the history is disabled. The venue asks once, before its first
        :meth:`advance`. Each call draws afresh from the symbol's own history stream (same result).
        """
        return {
            symbol: kline_history(
                self.config,
                symbol,
                self.engine.instruments[symbol],
                _gen(self.seed, 2, zlib.crc32(symbol.encode("ascii"))),
                int(before_ms),
            )
            for symbol in self.symbols
        }

    def detach(self) -> None:
        """Stop mirroring the engine's anonymous fills, so another market may be attached to it."""
        if self.engine.anonymous_fill_hook == self._on_fill:
            self.engine.anonymous_fill_hook = None

    # -- inspection ------------------------------------------------------------------------------------

    def market(self, symbol: str) -> SymbolMarket:
        """The per-symbol simulation of ``symbol`` (after the first :meth:`advance`)."""
        if symbol not in self.markets:
            raise KeyError(f"{symbol} is not simulated or the market has not started (call advance first)")
        return self.markets[symbol]

    def regime(self) -> str:
        """The regime in force now."""
        if self.chain is None or self.now is None:
            raise RuntimeError("the market has not started: call advance first")
        return self.chain.name_at(self.now)

    def fair_value(self, symbol: str) -> float:
        """The hidden fair value V of ``symbol`` in USDT (for checks and research, not for trading)."""
        return self.market(symbol).latent.value

    # -- internals -------------------------------------------------------------------------------------

    def _start(self, t0: int) -> None:
        cfg = self.config
        self.chain = RegimeChain(cfg, _gen(self.seed, 0, 0), t0)
        self._factor = MarketFactor(_gen(self.seed, 0, 1))
        for symbol in self.symbols:
            key = zlib.crc32(symbol.encode("ascii"))
            gens = [_gen(self.seed, 1, key, i) for i in range(4)]
            market = SymbolMarket(self.engine, symbol, cfg, gens, self.chain, self._factor, t0)
            self.markets[symbol] = market
            market.seed()
            if cfg.manipulation.enabled:
                market.manip = Manipulator(market, gens[3], f"{self.seed}/{symbol}/manipulator")
        self.now = t0

    def _on_fill(self, symbol: str, side: str, ticks: int, lots: int) -> None:
        market = self.markets.get(symbol)
        if market is not None:
            market.depth.on_fill(BID if side == BUY else ASK, ticks, lots)

    def _write_ground_truth(self, path: Path) -> None:
        fresh = [r for r in self.ground_truth() if r["episode_id"] not in self._gt_written]
        if fresh:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                for record in fresh:
                    fh.write(json.dumps(record) + "\n")
                    self._gt_written.add(record["episode_id"])


def build_market(
    engine: MatchingEngine,
    symbols: Iterable[str],
    seed: int,
    shift_at_ms: int | None = None,
    manipulation: bool = True,
) -> SyntheticMarket:
    """A :class:`SyntheticMarket` with the design defaults, an optional scheduled shift and manipulation."""
    config = MarketConfig(
        shift=ShiftParams(at_ms=shift_at_ms), manipulation=ManipulationParams(enabled=manipulation)
    )
    return SyntheticMarket(engine, symbols, seed=seed, config=config)
