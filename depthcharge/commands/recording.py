"""Loading a recording (raw snapshot rows and public trades) for the paper exchange's replay mode,
from the project database or the Parquet lake. Lives on the CLI side: exchange_sim may import only
`schemas`, so reading Postgres through infra happens here and hands it Arrow tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from depthcharge.commands._context import database
from infra.db.repositories import read_snapshots, read_trades
from schemas.arrow import PUBLIC_TRADES, RAW_SNAPSHOTS
from schemas.times import datetime_to_ms


@dataclass(frozen=True)
class Recording:
    snapshots: pa.Table
    trades: pa.Table | None
    source: str

    @property
    def start_ms(self) -> int:
        first = [int(pc.min(self.snapshots.column("ts")).as_py())]
        if self.trades is not None and self.trades.num_rows:
            first.append(int(pc.min(self.trades.column("ts")).as_py()))
        return min(first)

    def describe(self) -> str:
        trades = self.trades.num_rows if self.trades is not None else 0
        symbols = sorted(set(self.snapshots.column("symbol").to_pylist()))
        return f"{self.snapshots.num_rows:,} rows and {trades:,} trades of {', '.join(symbols)} from {self.source}"


def parse_time_ms(value: str, option: str) -> int:
    """Milliseconds since the epoch, or an ISO 8601 time (UTC when it names no zone)."""
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither ms since the epoch nor an ISO 8601 time", param_hint=option
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return datetime_to_ms(parsed)


def load_recording(source: str, symbols: tuple[str, ...], start_ms: int, end_ms: int) -> Recording:
    """Rows and trades of `symbols` with start_ms <= ts < end_ms; refuses an empty recording."""
    if start_ms >= end_ms:
        raise click.BadParameter(f"--replay-from ({start_ms}) must be before --replay-to ({end_ms})")
    if source == "db":
        with database() as db, db.connect() as conn:
            snaps = [read_snapshots(conn, s, start_ms, end_ms) for s in symbols]
            trades = [read_trades(conn, s, start_ms, end_ms) for s in symbols]
        recording = Recording(pa.concat_tables(snaps), pa.concat_tables(trades), "the database")
    else:
        recording = _from_lake(Path(source), symbols, start_ms, end_ms)
    if recording.snapshots.num_rows == 0:
        raise click.BadParameter(
            f"no raw snapshot rows of {', '.join(symbols)} in [{start_ms}, {end_ms}) in {recording.source}",
            param_hint="--replay-source",
        )
    return recording


def _from_lake(root: Path, symbols: tuple[str, ...], start_ms: int, end_ms: int) -> Recording:
    if not (root / "raw_snapshots").is_dir():
        raise click.BadParameter(f"{root} has no raw_snapshots/ directory", param_hint="--replay-source")

    def read(dataset: str, schema: pa.Schema) -> pa.Table | None:
        files = sorted((root / dataset).rglob("*.parquet"))
        if not files:
            return None
        table = pa.concat_tables([pq.read_table(f).select(schema.names).cast(schema) for f in files])
        keep = pc.and_(
            pc.is_in(table.column("symbol"), pa.array(symbols)),
            pc.and_(pc.greater_equal(table.column("ts"), start_ms), pc.less(table.column("ts"), end_ms)),
        )
        return table.filter(keep)

    snapshots = read("raw_snapshots", RAW_SNAPSHOTS)
    if snapshots is None:
        raise click.BadParameter(
            f"{root / 'raw_snapshots'} holds no Parquet files", param_hint="--replay-source"
        )
    return Recording(snapshots, read("public_trades", PUBLIC_TRADES), str(root))
