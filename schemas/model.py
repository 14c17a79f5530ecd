"""The model manifest: everything needed to load, trust and compare a trained model version."""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.enums import ModelStatus


class DataWindow(msgspec.Struct, frozen=True, kw_only=True):
    """The recorded data a model was trained and tested on."""

    symbols: list[str]
    start_ms: int
    end_ms: int
    n_train: int = 0
    n_validation: int = 0
    n_test: int = 0


class ModelManifest(msgspec.Struct, frozen=True, kw_only=True):
    """Stored as `manifest.json` beside the artifact and as a row of `model_versions`."""

    version: str
    model_type: str
    created_ms: int
    feature_spec_hash: str
    definitions_version: int
    feature_names: list[str]
    horizons_s: list[int]
    artifact_path: str
    artifact_sha256: str
    data_window: DataWindow
    code_version: str
    metrics: dict[str, float] = msgspec.field(default_factory=dict)
    scaler: dict[str, Any] | None = None
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    status: ModelStatus = ModelStatus.CANDIDATE
    parent_version: str | None = None

    def __post_init__(self) -> None:
        if len(self.artifact_sha256) != 64:
            raise ValueError(f"ModelManifest {self.version}: artifact_sha256 must be 64 hex characters")
        if len(self.feature_spec_hash) != 64:
            raise ValueError(f"ModelManifest {self.version}: feature_spec_hash must be 64 hex characters")

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> ModelManifest:
        return msgspec.json.decode(data, type=cls)
