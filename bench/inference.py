"""Model inference latency and throughput on CPU, beside baselines measured in the same run.

* Single prediction through ``ml.inference.Predictor`` (input checks + FeaturePreprocessor + the default
  HybridCNNLSTM), p50/p99 over many calls, against the original spec's budget of 10 ms.
* The bare model forward of one window under ``torch.inference_mode`` (what the predictor uses), under
  ``torch.no_grad`` and with autograd on (a naive caller): the ratios show what the modes save.
* The logistic baseline's ``predict_proba`` of one sample: the cheapest model we could serve instead.
* Batch throughput at batch 256 (windows/s) against one-at-a-time throughput.

Torch runs on one thread (the daemon shares the machine); the model has random weights (latency does not
depend on them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from bench.report import Figure, Section
from ml.datasets import WindowedDataset
from ml.inference import LATENCY_BUDGET_MS, Predictor
from ml.models import create_model
from ml.models.baselines import LogisticBaseline
from ml.models.hybrid_cnn_lstm import count_parameters
from ml.preprocessing import FeaturePreprocessor
from schemas.model import WINDOW

N_SINGLE = 400
BATCH = 256
N_BATCHES = 5


def _raw_rows(n: int, seed: int = 5) -> np.ndarray:
    """Positive, price-like raw feature rows (the preprocessor's logs and ratios take their normal path)."""
    rng = np.random.default_rng(seed)
    return (100.0 + 5.0 * rng.standard_normal((n, 110))).astype(np.float32)


def _latencies_ms(fn: Callable[[int], object], n: int) -> np.ndarray:
    out = np.empty(n)
    for i in range(n):
        began = time.perf_counter_ns()
        fn(i)
        out[i] = (time.perf_counter_ns() - began) / 1e6
    return out


def _summary(lat: np.ndarray) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(lat, 50)), 4),
        "p99_ms": round(float(np.percentile(lat, 99)), 4),
        "mean_ms": round(float(lat.mean()), 4),
    }


def run(quick: bool = False) -> dict[str, Any]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(*((40, 32, 2) if quick else (N_SINGLE, BATCH, N_BATCHES)))
    finally:
        torch.set_num_threads(threads)


def _run(n_single: int, batch_size: int, n_batches: int) -> dict[str, Any]:
    rows = _raw_rows(n_single + batch_size + WINDOW)
    windows = np.stack([rows[i : i + WINDOW] for i in range(n_single + batch_size)])
    preprocessor = FeaturePreprocessor.fit(rows)
    torch.manual_seed(0)
    model = create_model().eval()
    predictor = Predictor(model, preprocessor)
    for w in windows[:20]:  # warm-up: allocator, lazy init, caches
        predictor.predict(w)

    single = _latencies_ms(lambda i: predictor.predict(windows[i]), n_single)

    scaled = torch.from_numpy(preprocessor.transform(windows[:n_single]))

    def forward(mode: Callable[[], Any]) -> np.ndarray:
        def call(i: int) -> None:
            with mode():
                model(scaled[i : i + 1])

        call(0)
        return _latencies_ms(call, n_single)

    inference = forward(torch.inference_mode)
    no_grad = forward(torch.no_grad)
    autograd = forward(torch.enable_grad)

    n_train = 200 if n_single < N_SINGLE else 1000
    train_rows = _raw_rows(n_train + WINDOW - 1, seed=6)
    rng = np.random.default_rng(7)
    ends = np.arange(WINDOW - 1, len(train_rows))
    train = WindowedDataset(
        features=preprocessor.transform(train_rows),
        ends=ends,
        direction=rng.integers(0, 3, (n_train, 3)),
        movement_bps=rng.standard_normal((n_train, 3)),
        ts_ms=ends * 1000,
        symbols=np.full(n_train, "BENCHUSDT"),
        mid=np.full(n_train, 100.0),
    )
    logistic = LogisticBaseline().fit(train)
    one = [train.subset(np.array([i])) for i in range(min(n_single, n_train))]
    logistic_lat = _latencies_ms(lambda i: logistic.predict_proba(one[i % len(one)]), n_single)

    batch = windows[n_single : n_single + batch_size]
    predictor.predict_batch(batch)
    batch_lat = _latencies_ms(lambda _: predictor.predict_batch(batch), n_batches)
    batch_tput = batch_size / (float(np.median(batch_lat)) / 1e3)
    single_tput = 1e3 / float(np.median(single))

    p50 = float(np.percentile(single, 50))
    return {
        "torch_threads": 1,
        "single_calls": n_single,
        "model_parameters": count_parameters(model),
        "single_predict": {**_summary(single), "budget_ms": LATENCY_BUDGET_MS},
        "p99_over_budget": round(float(np.percentile(single, 99)) / LATENCY_BUDGET_MS, 4),
        "model_forward_inference_mode": _summary(inference),
        "model_forward_no_grad": _summary(no_grad),
        "model_forward_autograd": _summary(autograd),
        "autograd_over_inference_mode": round(float(np.median(autograd) / np.median(inference)), 3),
        "no_grad_over_inference_mode": round(float(np.median(no_grad) / np.median(inference)), 3),
        "predict_overhead_over_forward": round(p50 / float(np.median(inference)), 3),
        "baseline_logistic_single": _summary(logistic_lat),
        "predict_over_logistic": round(p50 / float(np.median(logistic_lat)), 3),
        "batch": {
            "batch_size": batch_size,
            "p50_ms": round(float(np.median(batch_lat)), 3),
            "windows_per_s": round(batch_tput, 1),
            "single_windows_per_s": round(single_tput, 1),
            "batch_over_single_throughput": round(batch_tput / single_tput, 2),
        },
    }


def section(result: Mapping[str, Any]) -> Section:
    single, forward = result["single_predict"], result["model_forward_inference_mode"]
    no_grad, autograd = result["model_forward_no_grad"], result["model_forward_autograd"]
    batch = result["batch"]
    return Section(
        title="Model inference",
        summary=(
            f"One window of 60 × 110 through the default CNN-LSTM ({result['model_parameters']:,} parameters, "
            "random weights, one torch thread): the predictor against the bare forward pass, the forward "
            "pass under each autograd mode, the logistic baseline, and batching"
        ),
        figures=[
            Figure("Predictor.predict, p50", single["p50_ms"], "ms", "bare model forward (inference_mode), p50",
                   forward["p50_ms"]),
            Figure("Predictor.predict, p99", single["p99_ms"], "ms", "bare model forward (inference_mode), p99",
                   forward["p99_ms"]),
            Figure("model forward, inference_mode, p50", forward["p50_ms"], "ms",
                   "the same forward with autograd on, p50", autograd["p50_ms"]),
            Figure("model forward, no_grad, p50", no_grad["p50_ms"], "ms",
                   "the same forward with autograd on, p50", autograd["p50_ms"]),
            Figure("CNN-LSTM prediction, p50", single["p50_ms"], "ms",
                   "logistic baseline's predict_proba of one sample, p50",
                   result["baseline_logistic_single"]["p50_ms"]),
            Figure(f"predict_batch of {batch['batch_size']}", batch["windows_per_s"], "windows/s",
                   "predict one window at a time", batch["single_windows_per_s"]),
        ],
        notes=[
            f"A prediction's p99 is {single['p99_ms']:.3g} ms, {result['p99_over_budget']:.1%} of the original "
            f"specification's {single['budget_ms']:g} ms budget.",
        ],
        details=result,
    )  # fmt: skip


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
