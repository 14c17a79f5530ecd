"""Training cost on CPU: seconds per epoch per 10k windows of the CNN-LSTM, beside the gradient-boosting fit.

The dataset is the synthetic pattern set of the model tests (labels that depend on a pattern inside the
window), 10,000 windows of 60 × 110; what is measured is the cost per sample, which does not depend on
what the labels mean. Configurations: the demo's and the protocol's (``ml.candidate.tuned_config``) and
the model's defaults, one epoch each after a warm-up batch, on one torch thread (the machine is shared);
the baselines fit the same windows' decision-time vectors, one classifier per horizon, also on one thread.

The gradient-boosting fit is the baseline because it is the strongest of the baselines the CNN-LSTM
is evaluated against (docs/ml.md): one epoch of the network is set against one whole fit of the booster,
which is what choosing between the two costs in training time. The logistic fit is reported against the
same baseline, as the floor of what a model costs to train.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from bench.report import Figure, Section
from ml.candidate import quick_config, tuned_config
from ml.datasets import WindowedDataset
from ml.models import create_model
from ml.models.baselines import GradientBoostingBaseline, LogisticBaseline
from ml.models.hybrid_cnn_lstm import ModelConfig, count_parameters
from ml.training import Trainer
from schemas.model import WINDOW

N_WINDOWS = 10_000
N_VAL = 1_000


def _dataset(n: int, seed: int) -> WindowedDataset:
    rng = np.random.default_rng(seed)
    rows = n + WINDOW - 1
    features = rng.standard_normal((rows, 110)).astype(np.float32)
    z = rng.standard_normal(rows)
    features[:, :8] += z[:, None]
    ends = np.arange(WINDOW - 1, rows, dtype=np.int64)
    s = np.stack([z[ends - k].mean() + z[ends] for k in (0, 10, 30)], axis=1) + rng.standard_normal((n, 3))
    direction = np.where(s < -0.6, 0, np.where(s > 0.6, 2, 1)).astype(np.int64)
    return WindowedDataset(
        features=features,
        ends=ends,
        direction=direction,
        movement_bps=5.0 * s,
        ts_ms=ends * 1000,
        symbols=np.full(n, "BENCHUSDT"),
        mid=np.full(n, 100.0),
    )


def _epoch_seconds(
    model_config: ModelConfig, trainer_config: Any, train: WindowedDataset, val: WindowedDataset
) -> dict[str, Any]:
    torch.manual_seed(0)
    model = create_model(model_config)
    cfg = replace(trainer_config, epochs=1, patience=1, progress=False, device="cpu")
    began = time.perf_counter()
    history = Trainer(model, cfg).fit(train, val)
    total = time.perf_counter() - began
    epoch = history.records[0].seconds
    return {
        "parameters": count_parameters(model),
        "batch_size": cfg.batch_size,
        "epoch_s": round(epoch, 3),
        "epoch_s_per_10k_windows": round(epoch * 10_000 / len(train), 3),
        "fit_s_including_validation": round(total, 3),
    }


def run(quick: bool = False) -> dict[str, Any]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(*((500, 100) if quick else (N_WINDOWS, N_VAL)))
    finally:
        torch.set_num_threads(threads)


def _run(n_windows: int, n_val: int) -> dict[str, Any]:
    train, val = _dataset(n_windows, 1), _dataset(n_val, 2)
    quick, tuned = quick_config(), tuned_config()
    out: dict[str, Any] = {"torch_threads": 1, "windows": n_windows, "validation_windows": n_val}
    out["cnn_lstm_quick"] = _epoch_seconds(quick.model, quick.trainer, train, val)
    out["cnn_lstm_tuned"] = _epoch_seconds(tuned.model, tuned.trainer, train, val)
    out["cnn_lstm_default"] = _epoch_seconds(ModelConfig(), tuned.trainer, train, val)
    for name, baseline in (
        ("gradient_boosting", GradientBoostingBaseline()),
        ("logistic", LogisticBaseline()),
    ):
        began = time.perf_counter()
        with threadpool_limits(1):  # one thread, like torch: the comparison is per core
            baseline.fit(train)
        seconds = time.perf_counter() - began
        out[f"{name}_fit"] = {
            "fit_s": round(seconds, 3),
            "fit_s_per_10k_windows": round(seconds * 10_000 / len(train), 3),
        }
    out["tuned_epoch_over_gradient_boosting_fit"] = round(
        out["cnn_lstm_tuned"]["epoch_s_per_10k_windows"]
        / out["gradient_boosting_fit"]["fit_s_per_10k_windows"],
        3,
    )
    return out


CONFIGS = {
    "cnn_lstm_quick": "CNN-LSTM epoch, the demo's configuration",
    "cnn_lstm_tuned": "CNN-LSTM epoch, the protocol's configuration",
    "cnn_lstm_default": "CNN-LSTM epoch, the model's defaults",
}


def section(result: Mapping[str, Any]) -> Section:
    gbm = result["gradient_boosting_fit"]["fit_s_per_10k_windows"]
    figures = [
        Figure(f"{label} ({result[key]['parameters']:,} parameters, batch {result[key]['batch_size']})",
               result[key]["epoch_s_per_10k_windows"], "s per 10k windows", "gradient-boosting fit, whole", gbm)
        for key, label in CONFIGS.items()
    ]  # fmt: skip
    figures.append(
        Figure("logistic baseline fit, whole", result["logistic_fit"]["fit_s_per_10k_windows"],
               "s per 10k windows", "gradient-boosting fit, whole", gbm)
    )  # fmt: skip
    return Section(
        title="Training on CPU",
        summary=(
            f"Seconds per epoch per 10,000 windows of 60 × 110 (measured on {result['windows']:,}, one torch "
            "and one BLAS thread) for three CNN-LSTM configurations, against one whole fit of the "
            "gradient-boosting baseline on the same windows"
        ),
        figures=figures,
        details=result,
    )


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
