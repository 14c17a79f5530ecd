"""`/api/detection`: the manipulation and support/resistance detectors of the decisions (503 without them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from schemas.detection import DetectionKind
from trading_daemon.api.deps import Daemon, Viewer
from trading_daemon.api.models_ops import (
    DetectionOut,
    DetectionsOut,
    DetectionStatusOut,
    DetectionStoreOut,
    LevelOut,
    LevelsOut,
    SymbolDetectionOut,
)
from trading_daemon.detection.service import DetectionStatus

router = APIRouter(prefix="/api/detection", tags=["detection"])

SymbolPath = Annotated[str, Path(min_length=1, max_length=30, examples=["BTCUSDT"])]


def detection_status(status: DetectionStatus) -> DetectionStatusOut:
    return DetectionStatusOut(
        enabled=status.enabled,
        symbols=[SymbolDetectionOut.model_validate(s) for s in status.symbols.values()],
        active_manipulations=status.active_manipulations,
        errors=status.errors,
        store=None if status.store is None else DetectionStoreOut.model_validate(status.store),
    )


@router.get("/status", response_model=DetectionStatusOut, summary="Every symbol's detectors at a glance")
async def status(ctx: Daemon, user: Viewer) -> DetectionStatusOut:
    return detection_status(ctx.require_decisions().detection.status())


@router.get("/levels/{symbol}", response_model=LevelsOut, summary="Support and resistance levels of a symbol")
async def levels(ctx: Daemon, user: Viewer, symbol: SymbolPath) -> LevelsOut:
    detection = ctx.require_decisions().detection
    found = detection.levels(ctx.require_symbol(symbol))
    return LevelsOut(
        symbol=symbol,
        computed_ms=found[0].computed_ms if found else None,
        levels=[LevelOut.model_validate(level) for level in found],
    )


@router.get("/detections/{symbol}", response_model=DetectionsOut, summary="A symbol's recent detections")
async def detections(
    ctx: Daemon,
    user: Viewer,
    symbol: SymbolPath,
    kind: Annotated[DetectionKind | None, Query(description="Only detections of this kind.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DetectionsOut:
    detection = ctx.require_decisions().detection
    found = detection.detections(ctx.require_symbol(symbol), kind=kind)
    newest = list(reversed(found))[:limit]
    return DetectionsOut(
        symbol=symbol, kind=kind, detections=[DetectionOut.model_validate(d) for d in newest]
    )
