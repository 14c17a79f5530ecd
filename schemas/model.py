"""The model input contract and the model manifest.

The input contract is what training and serving must agree on besides the feature spec: a model reads
WINDOW consecutive feature vectors of one symbol (the last one at the decision time t) and predicts, per
horizon of HORIZONS_S, one of N_CLASSES direction classes. The dataset code (`ml.datasets`), the model, the
predictor and the daemon's live windows all import these; a model's manifest records the horizons it was
trained for and its parameters the window.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.enums import ModelStatus

WINDOW = 60  # feature vectors per model input: (batch, WINDOW, 110)
HORIZONS_S: tuple[int, ...] = (10, 30, 60)  # label horizons, seconds after t
# Direction classes, by class index: the direction −1/0/+1 (dead band around 0) plus one.
CLASS_NAMES: tuple[str, ...] = ("down", "flat", "up")
N_CLASSES = len(CLASS_NAMES)


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
