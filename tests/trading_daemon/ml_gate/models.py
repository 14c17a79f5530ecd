"""Small real models for the ML gate's tests: a tiny CNN-LSTM with a fitted preprocessor, registered in a
real registry (files + `model_versions`), promoted through the repository (which sends `model_promoted`)."""

from __future__ import annotations

import numpy as np
import torch

from depthcharge.soak.model import promote  # noqa: F401 - the tests import it from here
from ml.models import create_model
from ml.preprocessing import FeaturePreprocessor
from ml.registry import HYBRID_CNN_LSTM, ModelRegistry
from ml.windows import FeatureWindow
from schemas.features import feature_spec
from schemas.model import HORIZONS_S, WINDOW, DataWindow, ModelManifest
from testkit.rows import T0_MS
from tests.ml.synthetic_windows import TINY

SPEC = feature_spec()


def raw_rows(n: int, seed: int = 5) -> np.ndarray:
    """Positive, price-like raw feature rows (the preprocessor's logs and ratios take their normal path)."""
    rng = np.random.default_rng(seed)
    return 100.0 + 5.0 * rng.standard_normal((n, len(SPEC.names)))


PREPROCESSOR = FeaturePreprocessor.fit(raw_rows(500))


def windows(symbol: str, n: int, *, start_ms: int = T0_MS, seed: int = 9) -> list[FeatureWindow]:
    """`n` windows of consecutive 1 s rows."""
    rows = raw_rows(n + WINDOW, seed=seed)
    return [FeatureWindow(symbol, start_ms + i * 1000, rows[i : i + WINDOW]) for i in range(n)]


def register(registry: ModelRegistry, seed: int) -> ModelManifest:
    """Save a tiny CNN-LSTM with weights from `seed` as a candidate."""
    torch.manual_seed(seed)
    model = create_model(TINY).eval()
    return registry.save(
        model,
        model_type=HYBRID_CNN_LSTM,
        params={"model_config": TINY.to_dict()},
        preprocessor_dict=PREPROCESSOR.to_dict(),
        metrics={"score": float(seed)},
        data_window=DataWindow(symbols=["BTCUSDT"], start_ms=T0_MS, end_ms=T0_MS + 3_600_000, n_train=100),
        horizons_s=list(HORIZONS_S),
        feature_spec=SPEC,
    )
