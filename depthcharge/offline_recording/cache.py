"""Offline recordings kept on disk: the synthetic market is deterministic per seed, so a recording that
the evaluation protocol (`depthcharge evaluate`), the ablations or the benchmarks need is recorded once
and read back from Parquet afterwards.

A recording is named by :class:`RecordingSpec` (symbols, seconds, seed, shift, fixed regime, start). The
cache key is the spec plus a hash of the synthetic market's generator (`exchange_sim/market`), the feed's
settings (row cadence, grace) and ``FORMAT``, so a change of the market model records again instead of
serving stale rows. Changes elsewhere (the venue's order handling, the daemon's client) do not move the
key: they are not meant to change what the market publishes, and keying on them would re-record after
every unrelated edit. After a change that does alter recordings, bump ``FORMAT`` or pass
``refresh=True`` (`depthcharge evaluate --refresh-recordings`). Files are written to a temporary name and
renamed, so a parallel reader sees a whole file or none.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from depthcharge.offline_recording.recorder import DEFAULT_START_MS, record_synthetic
from exchange_sim.market import MarketConfig
from infra.settings import code_defaults
from schemas.arrow import candles_to_table, raw_rows_to_table

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("exchange_sim/market",)
FORMAT = 1  # bump when a change outside SOURCES alters what a recording holds
REGIMES = ("calm", "trending", "volatile")


@dataclass(frozen=True)
class RecordingSpec:
    """One offline recording of the synthetic market (docs/exchange_sim_market.md §7 for regimes and the
    shift). ``shift_at_s`` is seconds after the start; ``fixed_regime`` pins one regime (None: the Markov
    chain switches regimes)."""

    name: str
    symbols: tuple[str, ...]
    seconds: int
    seed: int
    shift_at_s: int | None = None
    fixed_regime: str | None = None
    start_ms: int = DEFAULT_START_MS

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\ "):
            raise ValueError(f"recording name {self.name!r} must be a non-empty word (it names files)")
        if not self.symbols:
            raise ValueError(f"recording {self.name}: name at least one symbol")
        if self.seconds < 120:
            raise ValueError(f"recording {self.name}: {self.seconds} s is too short (at least 120 s)")
        if self.shift_at_s is not None and not 0 < self.shift_at_s < self.seconds:
            raise ValueError(
                f"recording {self.name}: shift_at_s {self.shift_at_s} must lie inside the {self.seconds} s"
            )
        if self.fixed_regime is not None and self.fixed_regime not in REGIMES:
            raise ValueError(f"recording {self.name}: fixed_regime must be one of {REGIMES} or None")

    @property
    def shift_at_ms(self) -> int | None:
        return None if self.shift_at_s is None else self.start_ms + self.shift_at_s * 1000

    def key(self) -> str:
        """The file-name key: every parameter and the recording code's hash."""
        return (
            f"{'-'.join(self.symbols)}_{self.seconds}s_seed{self.seed}_shift{self.shift_at_s}"
            f"_regime{self.fixed_regime or 'any'}_{self.start_ms}_{code_hash()}"
        )

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "symbols": list(self.symbols),
            "seconds": self.seconds,
            "seed": self.seed,
            "shift_at_s": self.shift_at_s,
            "fixed_regime": self.fixed_regime,
            "start_ms": self.start_ms,
        }


@dataclass(frozen=True)
class RecordedSymbol:
    """One symbol of a recording as the Arrow tables of `schemas.arrow` (RAW_SNAPSHOTS, CANDLES)."""

    rows: pa.Table
    candles: pa.Table


@functools.cache
def code_hash() -> str:
    """SHA-256 (16 hex) over the market generator's sources, the feed's settings and numpy's version."""
    feed = code_defaults().feed
    digest = hashlib.sha256(
        f"numpy {np.__version__} format {FORMAT} interval {feed.snapshot_interval_ms} grace {feed.row_grace_ms}\n".encode()
    )
    for source in SOURCES:
        path = ROOT / source
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(ROOT)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _write(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def cached_recording(
    spec: RecordingSpec, cache_dir: Path, *, log: Callable[[str], None] | None = None, refresh: bool = False
) -> dict[str, RecordedSymbol]:
    """The rows and candles of every symbol of ``spec``, from ``cache_dir`` or recorded (and stored)."""
    directory = Path(cache_dir) / spec.key()
    paths = {s: (directory / f"{s}.rows.parquet", directory / f"{s}.candles.parquet") for s in spec.symbols}
    if not refresh and all(r.is_file() and c.is_file() for r, c in paths.values()):
        return {s: RecordedSymbol(pq.read_table(r), pq.read_table(c)) for s, (r, c) in paths.items()}
    if log is not None:
        log(
            f"recording {spec.name}: {spec.seconds:,} s of {', '.join(spec.symbols)} (seed {spec.seed}) "
            "offline; cached for the next run"
        )
    recording = record_synthetic(
        spec.symbols,
        seconds=spec.seconds,
        seed=spec.seed,
        start_ms=spec.start_ms,
        shift_at_ms=spec.shift_at_ms,
        market_config=MarketConfig(fixed_regime=spec.fixed_regime),
    )
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, RecordedSymbol] = {}
    for symbol, (rows_path, candles_path) in paths.items():
        out[symbol] = RecordedSymbol(
            raw_rows_to_table(recording.rows[symbol]), candles_to_table(recording.candles[symbol])
        )
        _write(out[symbol].rows, rows_path)
        _write(out[symbol].candles, candles_path)
    return out


def cached_labelled_features(
    spec: RecordingSpec, cache_dir: Path, *, log: Callable[[str], None] | None = None, refresh: bool = False
) -> list[pa.Table]:
    """The labelled_features table of every symbol of ``spec`` (default labels, the code's feature spec),
    from ``cache_dir`` or computed from the (cached) recording and stored."""
    from ml.datasets import read_labelled_features, write_labelled_features
    from ml.workflow import labelled_features
    from schemas.features import feature_spec

    features = feature_spec()
    directory = Path(cache_dir) / spec.key()
    paths = {s: directory / f"{s}.labelled_{features.spec_hash[:12]}.parquet" for s in spec.symbols}
    if not refresh and all(p.is_file() for p in paths.values()):
        return [read_labelled_features(p, spec=features) for p in paths.values()]
    recorded = cached_recording(spec, cache_dir, log=log, refresh=refresh)
    out = []
    for symbol, path in paths.items():
        table = labelled_features(recorded[symbol].rows, recorded[symbol].candles, spec=features)
        write_labelled_features(table, path, spec=features)
        out.append(read_labelled_features(path, spec=features))
    return out
