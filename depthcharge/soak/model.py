"""The soak's model versions: a tiny CNN-LSTM (random weights, a preprocessor fitted on random rows) saved in
the real registry and promoted through the repository, whose commit sends NOTIFY model_promoted.

The soak tests that the daemon follows a promotion under faults, not what a model predicts; a real training
run takes minutes (`depthcharge train`), a tiny untrained model a second.
"""

from __future__ import annotations

import numpy as np
import torch

from infra.db.connection import Database
from infra.db.repositories.model_versions import ModelVersionRepository
from ml.models import create_model
from ml.models.hybrid_cnn_lstm import ModelConfig
from ml.preprocessing import FeaturePreprocessor
from ml.registry import HYBRID_CNN_LSTM, ModelRegistry
from schemas.features import FeatureSpec
from schemas.model import HORIZONS_S, DataWindow, ModelManifest

TINY = ModelConfig(
    encoder_dim=4, cnn_channels=(8,), cnn_kernel_sizes=(3,), lstm_hidden=8, attention_dim=8, head_hidden=16
)


def register_tiny(
    registry: ModelRegistry, spec: FeatureSpec, *, seed: int, symbols: list[str]
) -> ModelManifest:
    """Save a tiny CNN-LSTM with weights drawn from `seed` as a candidate version."""
    rng = np.random.default_rng(seed)
    preprocessor = FeaturePreprocessor.fit(
        100.0 + 5.0 * rng.standard_normal((500, len(spec.names))), spec=spec
    )
    torch.manual_seed(seed)
    model = create_model(TINY).eval()
    start_ms = 1_700_000_000_000
    return registry.save(
        model,
        model_type=HYBRID_CNN_LSTM,
        params={"model_config": TINY.to_dict()},
        preprocessor_dict=preprocessor.to_dict(),
        metrics={"score": float(seed)},
        data_window=DataWindow(symbols=symbols, start_ms=start_ms, end_ms=start_ms + 3_600_000, n_train=500),
        horizons_s=list(HORIZONS_S),
        feature_spec=spec,
    )


def promote(db: Database, version: str) -> None:
    """Make `version` production (NOTIFY model_promoted on commit), whatever production was."""
    with db.connect(autocommit=True) as conn:
        repo = ModelVersionRepository(conn)
        current = repo.production()
        repo.promote(version, expected_production=None if current is None else current.version)
