"""Market data: raw snapshot rows, public trades and closed candles.

Writes (the daemon's recorder) are async and go through binary `COPY`; `ingest_*` stage the COPY in
a temporary table and skip rows already stored, so a spool back-fill can be replayed without
duplicates. Reads (Dagster, ML) are sync and return Arrow tables typed by `schemas.arrow`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
from psycopg import Connection

from infra.db.errors import storage_errors
from infra.db.repositories._base import AsyncConn, AsyncRepository, ms, ms_param
from schemas.arrow import CANDLES, PUBLIC_TRADES, RAW_SNAPSHOTS
from schemas.market import Candle, PublicTrade
from schemas.snapshot import LEVEL_ARRAY_FIELDS, RAW_SNAPSHOT_FIELDS, RawSnapshotRow
from schemas.times import ms_to_datetime


@dataclass(frozen=True)
class CopyTable:
    """How one record type maps onto its table for COPY: columns, binary types, row encoder."""

    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    encode: Callable[[Any], tuple[Any, ...]]
    key: tuple[str, ...]

    @property
    def copy_sql(self) -> str:
        return f"COPY {{table}} ({', '.join(self.columns)}) FROM STDIN (FORMAT BINARY)"


def _snapshot_type(name: str) -> str:
    if name in LEVEL_ARRAY_FIELDS:
        return "float8[]"
    field = RAW_SNAPSHOTS.field(name)
    return {
        pa.string(): "text",
        pa.bool_(): "bool",
        pa.int16(): "int2",
        pa.int32(): "int4",
        pa.int64(): "int8",
        pa.float64(): "float8",
    }[field.type]


def _encode_snapshot(row: RawSnapshotRow) -> tuple[Any, ...]:
    values = [getattr(row, n) for n in RAW_SNAPSHOT_FIELDS]
    values[1] = ms_to_datetime(row.ts)
    return tuple(values)


SNAPSHOTS = CopyTable(
    name="market_snapshots",
    columns=RAW_SNAPSHOT_FIELDS,
    types=tuple("timestamptz" if n == "ts" else _snapshot_type(n) for n in RAW_SNAPSHOT_FIELDS),
    encode=_encode_snapshot,
    key=("symbol", "ts"),
)

TRADES = CopyTable(
    name="public_trades",
    columns=("symbol", "ts", "trade_id", "side", "price", "size", "block_trade", "seq"),
    # enum_recv reads the label as text, so the side goes over binary COPY as text.
    types=("text", "timestamptz", "text", "text", "float8", "float8", "bool", "int8"),
    encode=lambda t: (
        t.symbol,
        ms_to_datetime(t.ts),
        t.trade_id,
        str(t.side),
        t.price,
        t.size,
        t.block_trade,
        t.seq,
    ),
    key=("symbol", "trade_id", "ts"),
)

CANDLE_TABLE = CopyTable(
    name="candles",
    columns=("symbol", "start_time", "open", "high", "low", "close", "volume", "turnover"),
    types=("text", "timestamptz", "float8", "float8", "float8", "float8", "float8", "float8"),
    encode=lambda c: (
        c.symbol,
        ms_to_datetime(c.start_ms),
        c.open,
        c.high,
        c.low,
        c.close,
        c.volume,
        c.turnover,
    ),
    key=("symbol", "start_time"),
)


class MarketDataRepository(AsyncRepository):
    """The recorder's writes."""

    async def copy_snapshots(self, rows: Sequence[RawSnapshotRow], *, conn: AsyncConn | None = None) -> int:
        """COPY rows straight in; a row already stored fails the whole batch (use ingest for replays)."""
        return await self._copy(SNAPSHOTS, rows, conn)

    async def ingest_snapshots(self, rows: Sequence[RawSnapshotRow], *, conn: AsyncConn | None = None) -> int:
        """COPY rows through a staging table, skipping (symbol, ts) already stored; returns rows added."""
        return await self._ingest(SNAPSHOTS, rows, conn)

    async def insert_snapshots_executemany(
        self, rows: Sequence[RawSnapshotRow], *, conn: AsyncConn | None = None
    ) -> int:
        """Row-by-row INSERT: the baseline the COPY path is benchmarked against."""
        placeholders = ", ".join(["%s"] * len(SNAPSHOTS.columns))
        async with self._tx(conn) as c, c.cursor() as cur:
            await cur.executemany(
                f"INSERT INTO market_snapshots ({', '.join(SNAPSHOTS.columns)}) VALUES ({placeholders})",
                [SNAPSHOTS.encode(r) for r in rows],
            )
        return len(rows)

    async def copy_trades(self, trades: Sequence[PublicTrade], *, conn: AsyncConn | None = None) -> int:
        return await self._copy(TRADES, trades, conn)

    async def ingest_trades(self, trades: Sequence[PublicTrade], *, conn: AsyncConn | None = None) -> int:
        return await self._ingest(TRADES, trades, conn)

    async def ingest_candles(self, candles: Sequence[Candle], *, conn: AsyncConn | None = None) -> int:
        """Closed candles are re-sent after reconnects and REST back-fills, so they always de-duplicate."""
        return await self._ingest(CANDLE_TABLE, candles, conn)

    async def _copy(
        self, table: CopyTable, records: Iterable[Any], conn: AsyncConn | None, target: str = ""
    ) -> int:
        n = 0
        sql = table.copy_sql.format(table=target or table.name)
        async with self._tx(conn) as c, c.cursor() as cur, cur.copy(sql) as copy:
            copy.set_types(list(table.types))
            for record in records:
                await copy.write_row(table.encode(record))
                n += 1
        return n

    async def _ingest(self, table: CopyTable, records: Sequence[Any], conn: AsyncConn | None) -> int:
        if not records:
            return 0
        stage = f"_stage_{table.name}"
        async with self._tx(conn) as c:
            await c.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table.name} INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            )
            await self._copy(table, records, c, target=stage)
            cols = ", ".join(table.columns)
            cur = await c.execute(
                f"INSERT INTO {table.name} ({cols}) SELECT DISTINCT ON ({', '.join(table.key)}) {cols} "
                f"FROM {stage} ON CONFLICT DO NOTHING"
            )
            added = cur.rowcount
            await c.execute(f"TRUNCATE {stage}")
        return added


# ---- reads (sync) ---------------------------------------------------------------------------------


def _read(
    conn: Connection[Any], sql: str, params: dict[str, Any], schema: pa.Schema, batch: int = 10_000
) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    names = schema.names
    with storage_errors(), conn.cursor(binary=True) as cur:
        cur.execute(sql, params)
        while chunk := cur.fetchmany(batch):
            for i, name in enumerate(names):
                columns[name].extend(r[i] for r in chunk)
    return pa.Table.from_pydict(columns, schema=schema)


def read_snapshots(conn: Connection[Any], symbol: str, start_ms: int, end_ms: int) -> pa.Table:
    """Raw snapshot rows of `symbol` with start_ms <= ts < end_ms, in time order, as RAW_SNAPSHOTS."""
    cols = ", ".join(ms("ts", "ts") if n == "ts" else n for n in RAW_SNAPSHOT_FIELDS)
    return _read(
        conn,
        f"""SELECT {cols} FROM market_snapshots
            WHERE symbol = %(symbol)s AND ts >= {ms_param("start")} AND ts < {ms_param("end")} ORDER BY ts""",
        {"symbol": symbol, "start": start_ms, "end": end_ms},
        RAW_SNAPSHOTS,
    )


def read_snapshots_pandas(conn: Connection[Any], symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
    """As read_snapshots, as a DataFrame (level arrays as numpy arrays per cell)."""
    return read_snapshots(conn, symbol, start_ms, end_ms).to_pandas()


def snapshot_span(conn: Connection[Any], symbol: str) -> tuple[int, int] | None:
    """The ts of the first and the last recorded raw snapshot row of `symbol`, or None when none is."""
    with storage_errors():
        row = conn.execute(
            f"SELECT {ms('min(ts)', 'first_ms')}, {ms('max(ts)', 'last_ms')} FROM market_snapshots "
            "WHERE symbol = %(symbol)s",
            {"symbol": symbol},
        ).fetchone()
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])


def read_trades(conn: Connection[Any], symbol: str, start_ms: int, end_ms: int) -> pa.Table:
    return _read(
        conn,
        f"""SELECT symbol, {ms("ts", "ts")}, trade_id, side::text, price, size, block_trade, seq FROM public_trades
            WHERE symbol = %(symbol)s AND ts >= {ms_param("start")} AND ts < {ms_param("end")} ORDER BY ts, seq""",
        {"symbol": symbol, "start": start_ms, "end": end_ms},
        PUBLIC_TRADES,
    )


def read_candles(conn: Connection[Any], symbol: str, start_ms: int, end_ms: int) -> pa.Table:
    """Closed candles of `symbol` starting in [start_ms, end_ms), oldest first."""
    return _read(
        conn,
        f"""SELECT symbol, {ms("start_time", "start_ms")}, open, high, low, close, volume, turnover FROM candles
            WHERE symbol = %(symbol)s AND start_time >= {ms_param("start")} AND start_time < {ms_param("end")}
            ORDER BY start_time""",
        {"symbol": symbol, "start": start_ms, "end": end_ms},
        CANDLES,
    )
