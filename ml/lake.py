"""Partitions of the Parquet lake: one time window of one symbol, exported from the database, kept as
Parquet files, and turned into labelled features from those files alone.

A raw partition holds everything its features need, so it can be processed without the database or its
neighbours:

* ``rows``: the raw snapshot rows with ``start_ms <= ts < end_ms`` (the ``raw_snapshots`` dataset, which
  ``exchange-sim --market replay`` can read: its files never overlap);
* ``trades``: the public trades of the window (``public_trades``);
* ``lookback``: up to 61 rows before the window (``raw_lookback``), whose features are not output: the row
  windows of the first rows reach that far back (docs/features.md §1.2), so the features of a row do not
  depend on where a partition starts;
* ``candles``: every closed candle the rows' candle windows K(t) read, i.e. from CANDLE_WINDOW minutes
  before the first row to the end of the window (``candles``; consecutive partitions' files overlap).

The rows of the last longest-horizon seconds of a window have no label inside the window and are dropped
(``ml.labels``' rule: never guessed), about 60 of 3,600 rows of an hour.

Files are written to a temporary name and renamed, with the Arrow schema of ``schemas.arrow``, the feature
spec hash they were made for and the window in the Parquet metadata. :class:`LakeLayout` is the one place
that knows the paths: ``<root>/<dataset>/symbol=<SYMBOL>/<YYYYMMDDTHHMMZ>.parquet``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import Connection

from infra.db.repositories.market_data import read_candles, read_snapshots, read_trades
from ml.datasets import read_labelled_features, write_labelled_features
from ml.features.rows import window_rows
from ml.labels import LabelConfig
from ml.workflow import labelled_features
from schemas.arrow import (
    CANDLES,
    PUBLIC_TRADES,
    RAW_SNAPSHOTS,
    SPEC_HASH_METADATA_KEY,
    labelled_features_schema,
)
from schemas.features import CANDLE_WINDOW, FeatureSpec
from schemas.market import CANDLE_INTERVAL_MS

LOOKBACK_ROWS = window_rows()  # 61: the longest row window plus its oldest row's predecessor
START_KEY = b"depthcharge.partition_start_ms"
END_KEY = b"depthcharge.partition_end_ms"
RAW_DATASETS: dict[str, pa.Schema] = {
    "raw_snapshots": RAW_SNAPSHOTS,
    "public_trades": PUBLIC_TRADES,
    "candles": CANDLES,
    "raw_lookback": RAW_SNAPSHOTS,
}
_FILE = re.compile(r"^(\d{8}T\d{4}Z)\.parquet$")


class LakeError(ValueError):
    """A lake file is missing, malformed, or was made for another feature spec; the message names it."""


@dataclass(frozen=True)
class RawPartition:
    """One symbol's raw data of one time window, self-contained (module docstring)."""

    symbol: str
    start_ms: int
    end_ms: int
    rows: pa.Table
    trades: pa.Table
    candles: pa.Table
    lookback: pa.Table

    def tables(self) -> dict[str, pa.Table]:
        """The tables by lake dataset name."""
        return {
            "raw_snapshots": self.rows,
            "public_trades": self.trades,
            "candles": self.candles,
            "raw_lookback": self.lookback,
        }


def candle_history_ms() -> int:
    """How far before a row its candle window K(t) can reach: CANDLE_WINDOW candles before the pin, which is
    at most two minutes before the row."""
    return (CANDLE_WINDOW + 2) * CANDLE_INTERVAL_MS


def export_raw_partition(
    conn: Connection[Any],
    symbol: str,
    start_ms: int,
    end_ms: int,
    *,
    interval_ms: int,
    lookback_rows: int = LOOKBACK_ROWS,
) -> RawPartition:
    """Read one window of ``symbol`` from the database (market_snapshots, public_trades, candles)."""
    if end_ms <= start_ms:
        raise ValueError(f"a partition must end after it starts, got [{start_ms}, {end_ms})")
    rows = read_snapshots(conn, symbol, start_ms, end_ms)
    before = read_snapshots(conn, symbol, start_ms - lookback_rows * interval_ms, start_ms)
    lookback = before.slice(max(0, before.num_rows - lookback_rows))
    first = int(lookback.column("ts")[0].as_py()) if lookback.num_rows else start_ms
    candles = read_candles(conn, symbol, first - candle_history_ms(), end_ms)
    trades = read_trades(conn, symbol, start_ms, end_ms)
    return RawPartition(symbol, start_ms, end_ms, rows, trades, candles, lookback)


def partition_labelled_features(
    raw: RawPartition, *, spec: FeatureSpec, labels: LabelConfig | None = None
) -> pa.Table:
    """The labelled_features table of the partition's rows, computed from the partition alone."""
    schema = labelled_features_schema(spec)
    if raw.rows.num_rows == 0:
        return schema.empty_table()
    rows = pa.concat_tables([raw.lookback, raw.rows]) if raw.lookback.num_rows else raw.rows
    table = labelled_features(rows, raw.candles, n_lookback=raw.lookback.num_rows, spec=spec, labels=labels)
    return table.cast(schema)


# ---- files ---------------------------------------------------------------------------------------------


def _stamp(start_ms: int) -> str:
    return datetime.fromtimestamp(start_ms / 1000, UTC).strftime("%Y%m%dT%H%MZ")


def _stamp_ms(stamp: str) -> int:
    return int(datetime.strptime(stamp, "%Y%m%dT%H%MZ").replace(tzinfo=UTC).timestamp() * 1000)


def write_table(
    path: Path, table: pa.Table, schema: pa.Schema, *, spec_hash: str, start_ms: int, end_ms: int
) -> Path:
    """Write ``table`` cast to ``schema`` with the spec hash and window in its metadata, atomically."""
    try:
        typed = table.select(schema.names).cast(schema)
    except (KeyError, pa.ArrowInvalid, ValueError) as exc:
        raise LakeError(f"cannot write {path}: the table does not fit {schema.metadata}: {exc}") from None
    metadata = {
        **(schema.metadata or {}),
        SPEC_HASH_METADATA_KEY: spec_hash.encode(),
        START_KEY: str(start_ms).encode(),
        END_KEY: str(end_ms).encode(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(typed.replace_schema_metadata(metadata), tmp, compression="zstd")
    os.replace(tmp, path)
    return path


def read_table(path: Path, schema: pa.Schema) -> tuple[pa.Table, dict[bytes, bytes]]:
    """Read a lake file as ``schema``; returns the table and its metadata."""
    if not path.is_file():
        raise LakeError(f"no lake file at {path}")
    table = pq.read_table(path)
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise LakeError(f"{path} lacks the columns {missing[:5]}: not a {schema.metadata} file")
    metadata = dict(table.schema.metadata or {})
    return table.select(schema.names).cast(schema), metadata


@dataclass(frozen=True)
class LakeLayout:
    """Where each dataset's files live under ``root``, and reading and writing them."""

    root: Path

    def partition_path(self, dataset: str, symbol: str, start_ms: int) -> Path:
        return self.root / dataset / f"symbol={symbol}" / f"{_stamp(start_ms)}.parquet"

    def asset_path(self, dataset: str) -> Path:
        """The one file of an unpartitioned dataset."""
        return self.root / dataset / f"{dataset}.parquet"

    def partitions(self, dataset: str, symbol: str) -> list[int]:
        """Start times of the partitions of ``symbol`` present in ``dataset``, oldest first."""
        directory = self.root / dataset / f"symbol={symbol}"
        if not directory.is_dir():
            return []
        found = (_FILE.match(p.name) for p in directory.iterdir())
        return sorted(_stamp_ms(m.group(1)) for m in found if m)

    def newest_partitions(
        self, dataset: str, symbols: Sequence[str], count: int, *, end_ms: int | None = None
    ) -> list[int]:
        """The ``count`` newest partition starts (at or before ``end_ms``) present for any of ``symbols``,
        oldest first: a training window of partitions."""
        if count < 1:
            raise ValueError(f"a window needs at least one partition, got {count}")
        starts = sorted({s for symbol in symbols for s in self.partitions(dataset, symbol)})
        if end_ms is not None:
            starts = [s for s in starts if s <= end_ms]
        return starts[-count:]

    # -- raw partitions --

    def write_raw(self, raw: RawPartition, *, spec_hash: str) -> dict[str, Path]:
        """Write the four files of a raw partition; returns their paths by dataset."""
        return {
            dataset: write_table(
                self.partition_path(dataset, raw.symbol, raw.start_ms),
                table,
                RAW_DATASETS[dataset],
                spec_hash=spec_hash,
                start_ms=raw.start_ms,
                end_ms=raw.end_ms,
            )
            for dataset, table in raw.tables().items()
        }

    def read_raw(self, symbol: str, start_ms: int) -> RawPartition:
        """The raw partition of ``symbol`` starting at ``start_ms``."""
        tables: dict[str, pa.Table] = {}
        end_ms = None
        for dataset, schema in RAW_DATASETS.items():
            table, metadata = read_table(self.partition_path(dataset, symbol, start_ms), schema)
            tables[dataset] = table
            end_ms = int(metadata.get(END_KEY, b"0"))
        if not end_ms or end_ms <= start_ms:
            raise LakeError(
                f"raw partition {symbol}@{_stamp(start_ms)} carries no window end in its metadata"
            )
        return RawPartition(
            symbol,
            start_ms,
            end_ms,
            tables["raw_snapshots"],
            tables["public_trades"],
            tables["candles"],
            tables["raw_lookback"],
        )

    # -- labelled features --

    def write_labelled(
        self, table: pa.Table, *, dataset: str, symbol: str, start_ms: int, spec: FeatureSpec
    ) -> Path:
        """Write a labelled_features table of one partition (refused unless it fits ``spec``)."""
        path = self.partition_path(dataset, symbol, start_ms)
        return write_labelled_features(table, path, spec=spec)

    def read_labelled(self, *, dataset: str, symbol: str, start_ms: int, spec: FeatureSpec) -> pa.Table:
        """A labelled_features partition, refused when it was made for another feature spec."""
        try:
            return read_labelled_features(self.partition_path(dataset, symbol, start_ms), spec=spec)
        except (FileNotFoundError, ValueError) as exc:
            raise LakeError(str(exc)) from None

    def read_labelled_window(
        self,
        *,
        dataset: str,
        symbols: Sequence[str],
        starts_ms: Sequence[int],
        spec: FeatureSpec,
    ) -> dict[tuple[str, int], pa.Table]:
        """The partitions of ``symbols`` × ``starts_ms`` that exist, by (symbol, start)."""
        out: dict[tuple[str, int], pa.Table] = {}
        for symbol in symbols:
            present = set(self.partitions(dataset, symbol))
            for start in starts_ms:
                if start in present:
                    out[(symbol, start)] = self.read_labelled(
                        dataset=dataset, symbol=symbol, start_ms=start, spec=spec
                    )
        return out
