from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest
import torch
from torch import nn

from infra.db.connection import Database
from infra.db.errors import NotFound
from infra.db.repositories.model_versions import PROMOTION_CHANNEL
from ml.registry import (
    DEFAULT_FACTORIES,
    HYBRID_CNN_LSTM,
    MANIFEST_FILE,
    REJECTION_FILE,
    WEIGHTS_FILE,
    ArtifactCorrupt,
    ArtifactMissing,
    FeatureSpecMismatch,
    InvalidModelInput,
    ModelNotFound,
    ModelRegistry,
    UnknownModelType,
)
from schemas.enums import ModelStatus
from schemas.features import feature_spec
from schemas.model import DataWindow, ModelManifest
from testkit.rows import T0_MS

torch.set_num_threads(1)

SPEC = feature_spec()
WINDOW = DataWindow(symbols=["BTCUSDT"], start_ms=T0_MS, end_ms=T0_MS + 3_600_000, n_train=100)
TINY_CONFIG = {"n_in": 110, "hidden": 16}


class TinyNet(nn.Module):
    """A small stand-in for the CNN-LSTM, with a buffer (BatchNorm running stats) to round-trip too."""

    def __init__(self, n_in: int, hidden: int) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.out = nn.Linear(hidden, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.norm(self.inp(x))))


def tiny_factory(params: dict[str, Any]) -> nn.Module:
    return TinyNet(**params["model_config"])


def trained_tiny(seed: int) -> TinyNet:
    torch.manual_seed(seed)
    model = TinyNet(**TINY_CONFIG)
    model.train()
    model(torch.randn(64, 110))  # moves the BatchNorm running statistics away from their defaults
    return model.eval()


@pytest.fixture
def registry(db: Database, tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(db, root=tmp_path / "models", factories={"tiny": tiny_factory})


def save(registry: ModelRegistry, seed: int, metrics: dict[str, float], **kw: Any) -> ModelManifest:
    args: dict[str, Any] = dict(
        model_type="tiny",
        params={"model_config": TINY_CONFIG, "lr": 1e-3},
        preprocessor_dict={"mean": [0.0] * 110, "scale": [1.0] * 110, "spec_hash": SPEC.spec_hash},
        metrics=metrics,
        data_window=WINDOW,
        horizons_s=(10, 30, 60),
        feature_spec=SPEC,
    )
    args.update(kw)
    return registry.save(trained_tiny(seed), **args)


def test_save_list_load_round_trip_gives_bit_identical_outputs(registry: ModelRegistry) -> None:
    manifest = save(registry, seed=1, metrics={"macro_f1": 0.41})
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", manifest.version)
    directory = registry.root / manifest.version
    assert sorted(p.name for p in directory.iterdir()) == [MANIFEST_FILE, WEIGHTS_FILE]
    assert hashlib.sha256((directory / WEIGHTS_FILE).read_bytes()).hexdigest() == manifest.artifact_sha256
    assert ModelManifest.from_json((directory / MANIFEST_FILE).read_bytes()) == manifest
    assert manifest.feature_spec_hash == SPEC.spec_hash and manifest.feature_names == list(SPEC.names)
    assert manifest.scaler is not None and manifest.scaler["spec_hash"] == SPEC.spec_hash
    assert manifest.code_version.startswith(("git:", "depthcharge "))
    assert manifest.status is ModelStatus.CANDIDATE
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".tmp")]

    assert [m.version for m in registry.list()] == [manifest.version]
    assert [m.version for m in registry.list(ModelStatus.CANDIDATE)] == [manifest.version]
    assert registry.list(ModelStatus.PRODUCTION) == []
    assert registry.get(manifest.version) == manifest

    loaded = registry.load(manifest.version, expected_spec_hash=SPEC.spec_hash)
    assert loaded.manifest == manifest and not loaded.model.training
    x = torch.randn(32, 110, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.equal(loaded.model(x), trained_tiny(1)(x))
    original = trained_tiny(1).state_dict()
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, original[name]), name


def test_load_refuses_a_model_of_another_feature_spec(registry: ModelRegistry) -> None:
    manifest = save(registry, seed=1, metrics={})
    other = feature_spec(snapshot_interval_ms=500).spec_hash
    with pytest.raises(FeatureSpecMismatch) as info:
        registry.load(manifest.version, expected_spec_hash=other)
    assert SPEC.spec_hash in str(info.value) and other in str(info.value)


def test_load_refuses_tampered_weights(registry: ModelRegistry) -> None:
    manifest = save(registry, seed=1, metrics={})
    weights = registry.root / manifest.version / WEIGHTS_FILE
    blob = bytearray(weights.read_bytes())
    blob[-100] ^= 0x01  # one bit inside the tensor data
    weights.write_bytes(bytes(blob))
    with pytest.raises(
        ArtifactCorrupt, match=f"sha256 .* but the manifest records {manifest.artifact_sha256}"
    ):
        registry.load(manifest.version, expected_spec_hash=SPEC.spec_hash)


CALLED: list[str] = []


def _payload(tag: str) -> None:
    CALLED.append(tag)


class Payload:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_payload, ("code ran",))


def test_load_unpickles_weights_only(registry: ModelRegistry, db: Database) -> None:
    # An attacker who can rewrite the file and both recorded hashes still cannot run code on load.
    manifest = save(registry, seed=1, metrics={})
    directory = registry.root / manifest.version
    torch.save({"inp.weight": Payload()}, directory / WEIGHTS_FILE)
    sha = hashlib.sha256((directory / WEIGHTS_FILE).read_bytes()).hexdigest()
    forged = msgspec.structs.replace(manifest, artifact_sha256=sha)
    (directory / MANIFEST_FILE).write_bytes(forged.to_json())
    with db.connect(autocommit=True) as conn:
        conn.execute(
            "UPDATE model_versions SET artifact_sha256 = %s, manifest = jsonb_set(manifest, "
            "'{artifact_sha256}', to_jsonb(%s::text)) WHERE version = %s",
            (sha, sha, manifest.version),
        )
    with pytest.raises(ArtifactCorrupt, match=r"weights_only=True"):
        registry.load(manifest.version, expected_spec_hash=SPEC.spec_hash)
    assert CALLED == []


def test_missing_files_unknown_versions_and_types_are_refused(registry: ModelRegistry, db: Database) -> None:
    a = save(registry, seed=1, metrics={})
    b = save(registry, seed=2, metrics={})
    (registry.root / a.version / WEIGHTS_FILE).unlink()
    with pytest.raises(ArtifactMissing, match=f"{a.version}: .*{WEIGHTS_FILE} is missing"):
        registry.load(a.version, expected_spec_hash=SPEC.spec_hash)
    (registry.root / b.version / MANIFEST_FILE).unlink()
    with pytest.raises(ArtifactMissing, match=f"{MANIFEST_FILE} is missing"):
        registry.load(b.version, expected_spec_hash=SPEC.spec_hash)
    with pytest.raises(ModelNotFound, match="unknown model version 'nope'"):
        registry.load("nope", expected_spec_hash=SPEC.spec_hash)
    with pytest.raises(ModelNotFound, match="'nope'"):
        registry.promote("nope", metric="f1", higher_is_better=True)
    bare = ModelRegistry(db, root=registry.root)  # without the "tiny" factory
    with pytest.raises(UnknownModelType, match="model_type 'tiny'"):
        bare.load(b.version, expected_spec_hash=SPEC.spec_hash)
    with pytest.raises(UnknownModelType, match="cannot save model_type 'tiny'"):
        save(bare, seed=3, metrics={})


def test_save_writes_nothing_when_the_input_is_bad_and_removes_files_when_the_row_fails(
    registry: ModelRegistry,
) -> None:
    with pytest.raises(ArtifactCorrupt, match="do not fit the module rebuilt from params"):
        save(registry, seed=1, metrics={}, params={"model_config": {"n_in": 110, "hidden": 8}})
    with pytest.raises(InvalidModelInput, match="metric 'f1' must be finite"):
        save(registry, seed=1, metrics={"f1": float("nan")})
    with pytest.raises(InvalidModelInput, match="params must be JSON-serialisable"):
        save(registry, seed=1, metrics={}, params={"model_config": TINY_CONFIG, "x": object()})
    with pytest.raises(NotFound, match="parent model version 'nope'"):
        save(registry, seed=1, metrics={}, parent_version="nope")
    assert not registry.root.exists() or list(registry.root.iterdir()) == []
    assert registry.list() == []


def test_promote_only_when_better_and_notify(registry: ModelRegistry, db: Database) -> None:
    with db.connect(autocommit=True) as listener:
        listener.execute(f"LISTEN {PROMOTION_CHANNEL}")
        assert registry.production() is None
        assert registry.load_production(SPEC.spec_hash) is None
        a = save(registry, seed=1, metrics={"macro_f1": 0.40, "log_loss": 0.9})
        first = registry.promote(a.version, metric="macro_f1", higher_is_better=True)
        assert first.promoted and first.production_version is None and "no production model" in first.reason

        worse = save(registry, seed=2, metrics={"macro_f1": 0.38, "log_loss": 0.8})
        refused = registry.promote(worse.version, metric="macro_f1", higher_is_better=True)
        assert not refused.promoted and "not better" in refused.reason
        assert (refused.candidate_value, refused.production_value) == (0.38, 0.40)
        # The same candidate is better on a lower-is-better metric.
        lower = registry.promote(worse.version, metric="log_loss", higher_is_better=False)
        assert lower.promoted and lower.production_version == a.version

        unmeasured = save(registry, seed=3, metrics={"log_loss": 0.1})
        missing = registry.promote(unmeasured.version, metric="macro_f1", higher_is_better=True)
        assert not missing.promoted and "has no metric 'macro_f1'" in missing.reason

        best = save(registry, seed=4, metrics={"macro_f1": 0.45})
        on_log_loss = registry.promote(best.version, metric="log_loss", higher_is_better=False)
        assert not on_log_loss.promoted and "has no metric 'log_loss'" in on_log_loss.reason
        tie = save(registry, seed=5, metrics={"macro_f1": 0.38})
        assert not registry.promote(tie.version, metric="macro_f1", higher_is_better=True).promoted
        assert registry.promote(best.version, metric="macro_f1", higher_is_better=True).promoted

        notes = [n.payload for n in listener.notifies(timeout=2, stop_after=3)]
    assert notes == [a.version, worse.version, best.version]
    production = registry.production()
    assert production is not None and production.version == best.version
    assert [m.version for m in registry.list(ModelStatus.PRODUCTION)] == [best.version]
    assert {m.version for m in registry.list(ModelStatus.ARCHIVED)} == {a.version, worse.version}
    no_baseline = registry.promote(unmeasured.version, metric="log_loss", higher_is_better=False)
    assert not no_baseline.promoted and f"production model {best.version} has no metric" in no_baseline.reason
    again = registry.promote(best.version, metric="macro_f1", higher_is_better=True)
    assert not again.promoted and "already the production model" in again.reason

    loaded = registry.load_production(SPEC.spec_hash)
    assert loaded is not None and loaded.manifest.version == best.version

    registry.reject(tie.version, "macro_f1 below the production model")
    assert registry.get(tie.version).status is ModelStatus.REJECTED
    record = msgspec.json.decode((registry.root / tie.version / REJECTION_FILE).read_bytes())
    assert record["reason"] == "macro_f1 below the production model"
    assert "was rejected" in registry.promote(tie.version, metric="macro_f1", higher_is_better=True).reason
    with pytest.raises(InvalidModelInput, match="it is the production model"):
        registry.reject(best.version, "no")


def test_concurrent_promotions_have_one_winner(registry: ModelRegistry, db: Database) -> None:
    versions = [save(registry, seed=i, metrics={"macro_f1": 0.5}).version for i in range(4)]
    barrier = threading.Barrier(len(versions))
    results: dict[str, bool] = {}
    errors: list[BaseException] = []

    def promote(version: str) -> None:
        own = ModelRegistry(db, root=registry.root, factories={"tiny": tiny_factory})
        try:
            barrier.wait(timeout=10)
            results[version] = own.promote(version, metric="macro_f1", higher_is_better=True).promoted
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    winners = [v for v, promoted in results.items() if promoted]
    assert len(results) == 4 and len(winners) == 1
    with db.connect() as conn:
        rows = conn.execute("SELECT version FROM model_versions WHERE status = 'production'").fetchall()
    assert rows == [(winners[0],)]


def test_connection_factory_and_default_factory(db: Database, tmp_path: Path) -> None:
    root = tmp_path / "var" / "models"
    registry = ModelRegistry(lambda: db.connect(autocommit=True), root, factories={"tiny": tiny_factory})
    assert registry.root == root
    manifest = save(registry, seed=1, metrics={})
    assert (root / manifest.version / WEIGHTS_FILE).is_file()
    assert [m.version for m in registry.list()] == [manifest.version]
    assert set(registry.factories) == {HYBRID_CNN_LSTM, "tiny", "majority", "logistic", "gradient_boosting"}
    with pytest.raises(InvalidModelInput, match="must contain 'model_config'"):
        DEFAULT_FACTORIES[HYBRID_CNN_LSTM]({})
