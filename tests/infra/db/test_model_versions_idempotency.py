from __future__ import annotations

import asyncio

import psycopg
import pytest

from infra.db.connection import Database
from infra.db.errors import DuplicateKey, NotFound, PromotionConflict
from infra.db.repositories import IdempotencyRepository, ModelVersionRepository
from infra.db.repositories.model_versions import PROMOTION_CHANNEL
from schemas.enums import ModelStatus
from schemas.features import feature_spec
from schemas.model import DataWindow, ModelManifest
from testkit.rows import T0_MS


def _manifest(version: str, **kw: object) -> ModelManifest:
    spec = feature_spec()
    fields: dict[str, object] = dict(
        version=version,
        model_type="cnn_lstm",
        created_ms=T0_MS,
        feature_spec_hash=spec.spec_hash,
        definitions_version=spec.definitions_version,
        feature_names=list(spec.names),
        horizons_s=[10, 30, 60],
        artifact_path=f"var/models/{version}/model.pt",
        artifact_sha256="ab" * 32,
        data_window=DataWindow(symbols=["BTCUSDT"], start_ms=T0_MS, end_ms=T0_MS + 3_600_000),
        code_version="test",
        metrics={"macro_f1_10s": 0.41},
    )
    fields.update(kw)
    return ModelManifest(**fields)  # type: ignore[arg-type]


def test_model_versions_register_promote_and_notify(db: Database) -> None:
    with db.connect(autocommit=True) as listener, db.connect(autocommit=True) as conn:
        listener.execute(f"LISTEN {PROMOTION_CHANNEL}")
        repo = ModelVersionRepository(conn)
        repo.add(_manifest("v1"))
        repo.add(_manifest("v2", created_ms=T0_MS + 1, parent_version="v1", metrics={"macro_f1_10s": 0.45}))
        with pytest.raises(DuplicateKey, match="'v1' is already registered"):
            repo.add(_manifest("v1"))
        with pytest.raises(NotFound, match="parent model version 'nope'"):
            repo.add(_manifest("v3", parent_version="nope"))
        assert repo.get("v2").metrics == {"macro_f1_10s": 0.45}
        assert repo.production() is None
        repo.promote("v1", expected_production=None)
        repo.promote("v2", expected_production="v1")
        with pytest.raises(PromotionConflict, match="expected 'v1', found 'v2'"):
            repo.promote("v1", expected_production="v1")
        prod = repo.production()
        assert prod is not None and prod.version == "v2" and prod.status is ModelStatus.PRODUCTION
        assert repo.get("v1").status is ModelStatus.ARCHIVED
        assert [m.version for m in repo.find()] == ["v2", "v1"]  # newest first
        notes = [n.payload for n in listener.notifies(timeout=2, stop_after=2)]
        assert notes == ["v1", "v2"]
        with pytest.raises(ValueError, match="use promote"):
            repo.set_status("v1", ModelStatus.PRODUCTION)


def test_only_one_production_model_even_bypassing_the_repository(db: Database) -> None:
    with db.connect(autocommit=True) as conn:
        repo = ModelVersionRepository(conn)
        repo.add(_manifest("a"))
        repo.add(_manifest("b"))
        repo.promote("a", expected_production=None)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("UPDATE model_versions SET status = 'production' WHERE version = 'b'")


async def test_idempotency_claim_complete_and_expiry(pool) -> None:
    repo = IdempotencyRepository(pool)
    owned, rec = await repo.claim("k1", "place_order", ttl_s=60, request_hash="h")
    assert owned and rec.status == "in_progress"
    again, existing = await repo.claim("k1", "place_order", ttl_s=60)
    assert not again and existing.status == "in_progress"
    await repo.complete("k1", {"order_id": "x"})
    got = await repo.get("k1")
    assert got is not None and got.result == {"order_id": "x"} and got.status == "completed"
    # Two racing claims of a fresh key: exactly one owns it.
    results = await asyncio.gather(*(repo.claim("k2", "op", ttl_s=60) for _ in range(4)))
    assert sum(owned for owned, _ in results) == 1
    await repo.claim("k3", "op", ttl_s=1)
    await asyncio.sleep(1.2)
    assert await repo.get("k3") is None
    assert await repo.purge_expired() == 1
    owned, _ = await repo.claim("k3", "op", ttl_s=60)
    assert owned
