"""A model version made ready to serve: verified by the registry, wrapped in a predictor, warmed up.

Loading is blocking (file reads, hashing, torch) and runs in a worker thread; nothing here touches the
event loop. The registry checks what a version must satisfy before it may predict (its feature-spec hash
equals the live features', the weights hash to the recorded sha256 and fit the rebuilt module); this
module adds what serving needs on top: a preprocessor of the same spec and the horizon the gate validates
with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from ml.inference import Predictor
from ml.preprocessing import FeaturePreprocessor
from ml.registry import ArtifactCorrupt, LoadedModel
from schemas.enums import ModelStatus
from schemas.model import ModelManifest
from schemas.times import now_ms

HOUR_MS = 3_600_000


class ModelSource(Protocol):
    """What the gate needs of `ml.registry.ModelRegistry`."""

    def production(self) -> ModelManifest | None: ...

    def list(self, status: ModelStatus | None = None, *, limit: int = 100) -> list[ModelManifest]: ...

    def load(self, version: str, *, expected_spec_hash: str) -> LoadedModel: ...


PredictorFactory = Callable[[LoadedModel, str], Predictor]


def configure_torch(threads: int) -> None:
    """Bound torch's intra-op threads and keep its CPU kernels free of run-time code generation.

    oneDNN (torch's `mkldnn` backend) JIT-compiles kernels: it writes machine code into memory and then
    makes that memory executable, which the daemon's systemd unit forbids (MemoryDenyWriteExecute=yes:
    "could not create a primitive"). Torch's own ATen kernels need no such memory and cost about 0.7 ms
    more per window (~1.9 ms against ~1.2 ms, p50, one thread), far inside the 10 ms budget and the 1 s
    row interval, so the daemon keeps the hardening and turns oneDNN off (tests/trading_daemon/ml_gate/
    test_executable_memory.py runs a prediction under the kernel's own MDWE restriction).
    Both settings are process-wide: torch has one intra-op pool and one backend switch.
    """
    torch.set_num_threads(threads)
    torch.backends.mkldnn.set_flags(False)  # type: ignore[no-untyped-call]


def predictor_for(loaded: LoadedModel, spec_hash: str) -> Predictor:
    """The predictor of a verified model: its preprocessor rebuilt from the manifest, checked against the spec."""
    manifest = loaded.manifest
    if manifest.scaler is None:
        raise ArtifactCorrupt(f"model {manifest.version}: the manifest holds no preprocessor (scaler)")
    try:
        preprocessor = FeaturePreprocessor.from_dict(dict(manifest.scaler), expected_spec_hash=spec_hash)
    except ValueError as exc:
        raise ArtifactCorrupt(f"model {manifest.version}: its preprocessor is refused: {exc}") from None
    return Predictor(loaded.model, preprocessor, manifest)


@dataclass(frozen=True)
class ServedModel:
    """One loaded version: what it is, its predictor, when it was loaded."""

    manifest: ModelManifest
    predictor: Predictor
    loaded_ms: int
    horizon_index: int  # of the gate's primary horizon in the model's horizons

    @property
    def version(self) -> str:
        return self.manifest.version

    def age_hours(self, at_ms: int) -> float:
        """Hours since the model was trained (its manifest's creation)."""
        return (at_ms - self.manifest.created_ms) / HOUR_MS

    def describe(self) -> dict[str, object]:
        """JSON-able summary for the API, the audit trail and logs."""
        m = self.manifest
        return {
            "version": m.version,
            "model_type": m.model_type,
            "created_ms": m.created_ms,
            "artifact_sha256": m.artifact_sha256,
            "feature_spec_hash": m.feature_spec_hash,
            "horizons_s": list(m.horizons_s),
            "loaded_ms": self.loaded_ms,
        }


def load_served(
    source: ModelSource,
    version: str,
    *,
    spec_hash: str,
    primary_horizon_s: int,
    factory: PredictorFactory = predictor_for,
) -> ServedModel:
    """Load, verify and warm `version` (blocking: call it in a thread). Raises the registry's errors."""
    loaded = source.load(version, expected_spec_hash=spec_hash)
    horizons = list(loaded.manifest.horizons_s)
    if primary_horizon_s not in horizons:
        raise ArtifactCorrupt(
            f"model {version} predicts horizons {horizons} s, not ML_PRIMARY_HORIZON_S={primary_horizon_s} s"
        )
    predictor = factory(loaded, spec_hash)
    predictor.warm()
    return ServedModel(
        manifest=loaded.manifest,
        predictor=predictor,
        loaded_ms=now_ms(),
        horizon_index=horizons.index(primary_horizon_s),
    )
