"""Baselines served as PyTorch modules: the same probabilities as the fitted estimators, through the
registry's save/load (plain tensors, weights_only) and the predictor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from infra.db.connection import Database
from ml.inference import Predictor
from ml.models.baselines import (
    GradientBoostingBaseline,
    LogisticBaseline,
    MajorityBaseline,
    default_baselines,
)
from ml.models.served import class_mean_moves, export_baseline
from ml.preprocessing import FeaturePreprocessor
from ml.registry import ModelRegistry
from schemas.features import feature_spec
from schemas.model import DataWindow
from tests.ml.synthetic_windows import pattern_dataset

torch.set_num_threads(1)


def _served_proba(module: torch.nn.Module, windows: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        out = module(torch.from_numpy(windows))
    return torch.softmax(out.direction_logits, dim=-1).numpy()


@pytest.mark.parametrize("baseline", default_baselines(None), ids=lambda b: b.name)
def test_served_module_equals_the_estimator(baseline: object) -> None:
    ds = pattern_dataset(1500, seed=1)
    fitted = baseline.fit(ds)  # type: ignore[attr-defined]
    module, spec = export_baseline(
        fitted, n_features=110, class_move_bps=class_mean_moves(ds.direction, ds.movement_bps)
    )
    idx = np.arange(0, 1500, 7)
    np.testing.assert_allclose(
        _served_proba(module, ds.windows(idx)), fitted.predict_proba(ds.subset(idx)), rtol=0, atol=1e-9
    )
    assert spec["kind"] == fitted.name  # type: ignore[attr-defined]


def test_two_and_one_class_horizons() -> None:
    ds = pattern_dataset(800, seed=2)
    direction = ds.direction.copy()
    direction[:, 1] = np.where(direction[:, 1] == 0, 1, direction[:, 1])  # 30 s: flat/up only
    direction[:, 2] = 2  # 60 s: always up
    from dataclasses import replace

    ds = replace(ds, direction=direction)
    for b in (LogisticBaseline(), GradientBoostingBaseline(max_iter=10), MajorityBaseline()):
        b.fit(ds)
        module, _ = export_baseline(b, n_features=110)
        served = _served_proba(module, ds.windows(np.arange(50)))
        np.testing.assert_allclose(served, b.predict_proba(ds.subset(np.arange(50))), atol=1e-9)
        assert (served[:, 1, 0] < 1e-12).all() and np.allclose(served[:, 2, 2], 1.0)


def test_a_registered_baseline_loads_and_serves(db: Database, tmp_path: Path) -> None:
    spec = feature_spec()
    rng = np.random.default_rng(3)
    raw = 100.0 + rng.standard_normal((900, 110))
    pre = FeaturePreprocessor.fit(raw, spec=spec)
    ds = pattern_dataset(800, seed=4)
    from dataclasses import replace

    ds = replace(ds, features=pre.transform(raw[: len(ds.features)]))
    gbm = GradientBoostingBaseline(max_iter=20).fit(ds)
    module, arch = export_baseline(
        gbm, n_features=110, temperatures=(1.5, 1.0, 0.8), confidence_temperature=1.2
    )
    registry = ModelRegistry(db, root=tmp_path)
    manifest = registry.save(
        module,
        model_type="gradient_boosting",
        params={"baseline": arch},
        preprocessor_dict=pre.to_dict(),
        metrics={"macro_f1_10s": 0.4},
        data_window=DataWindow(symbols=["SYNUSDT"], start_ms=0, end_ms=1),
        horizons_s=(10, 30, 60),
        feature_spec=spec,
    )
    loaded = registry.load(manifest.version, expected_spec_hash=spec.spec_hash)
    predictor = Predictor(
        loaded.model, FeaturePreprocessor.from_dict(loaded.manifest.scaler or {}), loaded.manifest
    )
    window = raw[100:160]
    got = predictor.predict(window)
    expected = _served_proba(module, pre.transform(window)[None])[0]
    np.testing.assert_allclose(got.probabilities, expected, atol=1e-9)
    assert 0.0 < got.confidence < 1.0 and got.model_version == manifest.version
