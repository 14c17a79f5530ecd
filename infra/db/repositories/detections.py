"""Detections (spoofing, layering, breakouts) and support/resistance levels (docs/detection.md).

A detection is upserted by its `detection_id`: a repeated spoof extends its episode's row, and a replayed
batch (a commit whose outcome the writer did not see) changes nothing, because a row is only replaced by
a version at least as new (`updated_at`). Level sets are keyed by (symbol, computed_at, price), so a
replayed set is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from infra.db.repositories._base import AsyncConn, AsyncRepository, jsonb, ms, ms_param
from schemas.detection import Detection, DetectionKind, SupportResistanceLevel
from schemas.times import ms_to_datetime

_DETECTION_COLUMNS = f"""detection_id, symbol, kind, side::text AS side, price_low, price_high,
    {ms("start_at")}, {ms("end_at")}, {ms("detected_at")}, {ms("updated_at")}, confidence, evidence"""

_LEVEL_COLUMNS = f"""symbol, kind, price, price_low, price_high, strength, touches, volume,
    {ms("first_touch_at")}, {ms("last_touch_at")}, {ms("computed_at")}, {ms("broken_at", "broken_ms")}"""


def _to_detection(row: dict[str, Any]) -> Detection:
    return msgspec.convert(row, Detection)


def _to_level(row: dict[str, Any]) -> SupportResistanceLevel:
    return msgspec.convert(row, SupportResistanceLevel)


class DetectionRepository(AsyncRepository):
    """Rows of `detections` and `sr_levels`."""

    async def upsert_detections(
        self, detections: Sequence[Detection], *, conn: AsyncConn | None = None
    ) -> int:
        """Insert or advance each detection; returns how many rows changed (older versions change nothing)."""
        if not detections:
            return 0
        params = [
            {
                "detection_id": d.detection_id,
                "symbol": d.symbol,
                "kind": str(d.kind),
                "side": str(d.side),
                "price_low": d.price_low,
                "price_high": d.price_high,
                "start_at": ms_to_datetime(d.start_ms),
                "end_at": ms_to_datetime(d.end_ms),
                "detected_at": ms_to_datetime(d.detected_ms),
                "updated_at": ms_to_datetime(d.updated_ms),
                "confidence": d.confidence,
                "evidence": jsonb(d.evidence),
            }
            for d in detections
        ]
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.executemany(
                """INSERT INTO detections (detection_id, symbol, kind, side, price_low, price_high, start_at,
                       end_at, detected_at, updated_at, confidence, evidence)
                   VALUES (%(detection_id)s, %(symbol)s, %(kind)s, %(side)s, %(price_low)s, %(price_high)s,
                       %(start_at)s, %(end_at)s, %(detected_at)s, %(updated_at)s, %(confidence)s, %(evidence)s)
                   ON CONFLICT (detection_id) DO UPDATE SET
                       price_low = EXCLUDED.price_low, price_high = EXCLUDED.price_high,
                       start_at = EXCLUDED.start_at, end_at = EXCLUDED.end_at,
                       updated_at = EXCLUDED.updated_at, confidence = EXCLUDED.confidence,
                       evidence = EXCLUDED.evidence
                   WHERE detections.updated_at <= EXCLUDED.updated_at""",
                params,
                returning=False,
            )
            return int(cur.rowcount)

    async def add_levels(
        self,
        symbol: str,
        computed_ms: int,
        levels: Sequence[SupportResistanceLevel],
        *,
        conn: AsyncConn | None = None,
    ) -> int:
        """Store one computed set of a symbol's levels (every level must carry `symbol` and `computed_ms`)."""
        for level in levels:
            if level.symbol != symbol or level.computed_ms != computed_ms:
                raise ValueError(
                    f"level {level.symbol} {level.price} computed at {level.computed_ms} does not belong to the "
                    f"set of {symbol} computed at {computed_ms}"
                )
        if not levels:
            return 0
        params = [
            {
                "symbol": lv.symbol,
                "computed_at": ms_to_datetime(lv.computed_ms),
                "price": lv.price,
                "kind": str(lv.kind),
                "price_low": lv.price_low,
                "price_high": lv.price_high,
                "strength": lv.strength,
                "touches": lv.touches,
                "volume": lv.volume,
                "first_touch_at": ms_to_datetime(lv.first_touch_ms),
                "last_touch_at": ms_to_datetime(lv.last_touch_ms),
                "broken_at": None if lv.broken_ms is None else ms_to_datetime(lv.broken_ms),
            }
            for lv in levels
        ]
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.executemany(
                """INSERT INTO sr_levels (symbol, computed_at, price, kind, price_low, price_high, strength,
                       touches, volume, first_touch_at, last_touch_at, broken_at)
                   VALUES (%(symbol)s, %(computed_at)s, %(price)s, %(kind)s, %(price_low)s, %(price_high)s,
                       %(strength)s, %(touches)s, %(volume)s, %(first_touch_at)s, %(last_touch_at)s,
                       %(broken_at)s)
                   ON CONFLICT (symbol, computed_at, price) DO NOTHING""",
                params,
                returning=False,
            )
            return int(cur.rowcount)

    async def recent_detections(
        self,
        *,
        symbol: str | None = None,
        kind: DetectionKind | None = None,
        since_ms: int | None = None,
        limit: int = 100,
        conn: AsyncConn | None = None,
    ) -> list[Detection]:
        """Detections newest first (by start), optionally of one symbol, one kind, starting at or after `since_ms`."""
        where = ["TRUE"]
        params: dict[str, Any] = {"limit": limit}
        if symbol is not None:
            where.append("symbol = %(symbol)s")
            params["symbol"] = symbol
        if kind is not None:
            where.append("kind = %(kind)s")
            params["kind"] = str(kind)
        if since_ms is not None:
            where.append(f"start_at >= {ms_param('since_ms')}")
            params["since_ms"] = since_ms
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"SELECT {_DETECTION_COLUMNS} FROM detections WHERE {' AND '.join(where)} "
                "ORDER BY start_at DESC, detection_id LIMIT %(limit)s",
                params,
            )
            return [_to_detection(r) for r in await cur.fetchall()]

    async def latest_levels(
        self, symbol: str, *, conn: AsyncConn | None = None
    ) -> list[SupportResistanceLevel]:
        """The newest stored set of `symbol`'s levels, lowest price first ([] if none stored)."""
        async with self._tx(conn) as c:
            cur = self._cursor(c)
            await cur.execute(
                f"""SELECT {_LEVEL_COLUMNS} FROM sr_levels
                    WHERE symbol = %(symbol)s
                      AND computed_at = (SELECT max(computed_at) FROM sr_levels WHERE symbol = %(symbol)s)
                    ORDER BY price""",
                {"symbol": symbol},
            )
            return [_to_level(r) for r in await cur.fetchall()]
