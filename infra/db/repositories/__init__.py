"""Repositories over Postgres: async for the daemon, sync where Dagster and the CLI read."""

from infra.db.repositories.audit import AuditRepository, verify_chain
from infra.db.repositories.fills import FillRepository
from infra.db.repositories.idempotency import IdempotencyRepository
from infra.db.repositories.market_data import (
    MarketDataRepository,
    read_candles,
    read_snapshots,
    read_snapshots_pandas,
    read_trades,
    snapshot_span,
)
from infra.db.repositories.model_versions import ModelVersionRepository
from infra.db.repositories.orders import OrderRepository
from infra.db.repositories.positions import PositionRepository

__all__ = [
    "AuditRepository",
    "FillRepository",
    "IdempotencyRepository",
    "MarketDataRepository",
    "ModelVersionRepository",
    "OrderRepository",
    "PositionRepository",
    "read_candles",
    "read_snapshots",
    "read_snapshots_pandas",
    "read_trades",
    "snapshot_span",
    "verify_chain",
]
