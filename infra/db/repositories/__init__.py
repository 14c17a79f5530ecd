"""Repositories over Postgres: async for the daemon, sync where Dagster and the CLI read."""

from infra.db.repositories.audit import AuditRepository, verify_chain
from infra.db.repositories.detections import DetectionRepository
from infra.db.repositories.execution import (
    ExecutionStateRepository,
    ReconciliationRun,
    ReconciliationRunRepository,
)
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
from infra.db.repositories.orchestration import (
    DriftReportRecord,
    DriftReportRepository,
    RetrainingRunRecord,
    RetrainingRunRepository,
)
from infra.db.repositories.orders import OrderRepository
from infra.db.repositories.positions import PositionRepository
from infra.db.repositories.strategy_statistics import StrategyStatisticsRepository

__all__ = [
    "AuditRepository",
    "DetectionRepository",
    "DriftReportRecord",
    "DriftReportRepository",
    "ExecutionStateRepository",
    "FillRepository",
    "IdempotencyRepository",
    "MarketDataRepository",
    "ModelVersionRepository",
    "OrderRepository",
    "PositionRepository",
    "ReconciliationRun",
    "ReconciliationRunRepository",
    "RetrainingRunRecord",
    "RetrainingRunRepository",
    "StrategyStatisticsRepository",
    "read_candles",
    "read_snapshots",
    "read_snapshots_pandas",
    "read_trades",
    "snapshot_span",
    "verify_chain",
]
