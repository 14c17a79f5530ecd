"""The raw snapshot row: the one contract between the live daemon and the ML platform.

Exactly the fields of docs/features.md §6.1, in that order, plus two optional diagnostic fields that no
feature reads (§6.1 allows them). The builder (trading_daemon) is its only producer.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

BOOK_DEPTH = 50  # levels per side in a row (docs/features.md §5)
# `last_candle_start_ms` of a row built before the builder held any closed candle (docs/features.md §6.1): the
# candle and indicator features then follow m*(t) row by row.
NO_CANDLE_PIN = -1


class RawSnapshotRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row per symbol every SNAPSHOT_INTERVAL_MS: the book and the stream aggregates since the last row."""

    symbol: str
    ts: int
    interval_ms: int
    book_reset: bool
    n_bid_levels: int
    n_ask_levels: int
    bid_prices: list[float]
    bid_sizes: list[float]
    ask_prices: list[float]
    ask_sizes: list[float]
    last_candle_start_ms: int
    n_book_msgs: int
    n_bbo_changes: int
    bid_inserts: int
    bid_updates: int
    bid_deletes: int
    ask_inserts: int
    ask_updates: int
    ask_deletes: int
    ttl_count: int
    ttl_sum_s: float
    ttl_sumsq_s2: float
    n_buy_trades: int
    n_sell_trades: int
    buy_volume: float
    sell_volume: float
    buy_notional: float
    sell_notional: float
    eff_spread_wsum: float
    eff_spread_volume: float
    last_trade_price: float
    late_messages: int
    # diagnostics (§6.1: "a row may also carry"); no feature reads them
    book_update_id: int | None = None
    book_msg_ts: int | None = None

    def __post_init__(self) -> None:
        validate_row(self)


# Field names in contract order; the database columns and the Arrow schema follow this order.
RAW_SNAPSHOT_FIELDS: tuple[str, ...] = RawSnapshotRow.__struct_fields__
LEVEL_ARRAY_FIELDS = ("bid_prices", "bid_sizes", "ask_prices", "ask_sizes")
COUNT_FIELDS = (
    "n_book_msgs",
    "n_bbo_changes",
    "bid_inserts",
    "bid_updates",
    "bid_deletes",
    "ask_inserts",
    "ask_updates",
    "ask_deletes",
    "ttl_count",
    "n_buy_trades",
    "n_sell_trades",
    "late_messages",
)
NONNEGATIVE_FLOAT_FIELDS = (
    "ttl_sum_s",
    "ttl_sumsq_s2",
    "buy_volume",
    "sell_volume",
    "buy_notional",
    "sell_notional",
    "eff_spread_wsum",
    "eff_spread_volume",
    "last_trade_price",
)


def validate_row(row: RawSnapshotRow) -> None:
    """Raise ValueError naming the field when `row` breaks docs/features.md §6.1."""
    where = f"RawSnapshotRow {row.symbol}@{row.ts}"
    if not row.symbol:
        raise ValueError(f"{where}: symbol is empty")
    if row.ts <= 0:
        raise ValueError(f"{where}: ts must be positive milliseconds since the epoch")
    if row.interval_ms < 0:
        raise ValueError(f"{where}: interval_ms must be >= 0, got {row.interval_ms}")
    if row.last_candle_start_ms < NO_CANDLE_PIN:
        raise ValueError(
            f"{where}: last_candle_start_ms must be {NO_CANDLE_PIN} (no candle) or a start time, "
            f"got {row.last_candle_start_ms}"
        )
    for side, n in (("bid", row.n_bid_levels), ("ask", row.n_ask_levels)):
        if not 0 <= n <= BOOK_DEPTH:
            raise ValueError(f"{where}: n_{side}_levels must be in 0..{BOOK_DEPTH}, got {n}")
    for name in LEVEL_ARRAY_FIELDS:
        values: list[float] = getattr(row, name)
        if len(values) != BOOK_DEPTH:
            raise ValueError(f"{where}: {name} must hold {BOOK_DEPTH} values, got {len(values)}")
        n = row.n_bid_levels if name.startswith("bid") else row.n_ask_levels
        for i, v in enumerate(values):
            if not math.isfinite(v):
                raise ValueError(f"{where}: {name}[{i}] is not finite ({v})")
            if i < n and v <= 0:
                raise ValueError(f"{where}: {name}[{i}] must be > 0 within the {n} present levels, got {v}")
            if i >= n and v != 0.0:
                raise ValueError(f"{where}: {name}[{i}] is padding past {n} levels and must be 0, got {v}")
    for name in COUNT_FIELDS:
        if getattr(row, name) < 0:
            raise ValueError(f"{where}: {name} must be >= 0, got {getattr(row, name)}")
    for name in NONNEGATIVE_FLOAT_FIELDS:
        v = getattr(row, name)
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{where}: {name} must be finite and >= 0, got {v}")


def pad_levels(values: list[float]) -> list[float]:
    """Pad a side's prices or sizes with zeros to BOOK_DEPTH (rows always hold 50 per array)."""
    if len(values) > BOOK_DEPTH:
        raise ValueError(f"{len(values)} levels given, a row holds at most {BOOK_DEPTH}")
    return [*values, *([0.0] * (BOOK_DEPTH - len(values)))]


def row_from_mapping(values: dict[str, Any]) -> RawSnapshotRow:
    """Build (and validate) a row from a mapping keyed by field name, e.g. a database or Arrow record."""
    return msgspec.convert(values, RawSnapshotRow)
