"""Serving one model: raw feature windows in, per-horizon probabilities, direction, confidence and return out.

:class:`Predictor` holds the model (eval mode, inference mode: no autograd) and its preprocessor, checks
every input (shape, finiteness) with errors that name the offending row and feature, and records the
latency of every call (preprocessing included) so the daemon can report it beside the original spec's
budget of 10 ms per prediction.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from schemas.features import FEATURE_NAMES, N_FEATURES
from schemas.model import HORIZONS_S, N_CLASSES, WINDOW, ModelManifest

LATENCY_BUDGET_MS = 10.0  # original spec, "Important notes / Performance"


class Preprocessor(Protocol):
    """What the predictor needs of ``ml.preprocessing.FeaturePreprocessor``."""

    def transform(self, features: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Prediction:
    """One window's prediction; classes are ordered down/flat/up, directions are −1/0/+1."""

    probabilities: np.ndarray  # (H, 3) float64
    direction: tuple[int, ...]  # per horizon, the most probable class as −1/0/+1
    confidence: float  # in [0, 1]: the model's estimate that its primary-horizon direction is right
    expected_return_bps: tuple[float, ...]  # per horizon
    horizons_s: tuple[int, ...]
    latency_ms: float
    model_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (for the API and the audit trail)."""
        return {
            "probabilities": self.probabilities.tolist(),
            "direction": list(self.direction),
            "confidence": self.confidence,
            "expected_return_bps": list(self.expected_return_bps),
            "horizons_s": list(self.horizons_s),
            "latency_ms": self.latency_ms,
            "model_version": self.model_version,
        }


@dataclass(frozen=True)
class BatchPrediction:
    """Predictions of n windows as arrays; ``row(i)`` gives the i-th as a :class:`Prediction`."""

    probabilities: np.ndarray  # (n, H, 3) float64
    direction: np.ndarray  # (n, H) int64, −1/0/+1
    confidence: np.ndarray  # (n,) float64
    expected_return_bps: np.ndarray  # (n, H) float64
    horizons_s: tuple[int, ...]
    latency_ms: float  # of the whole batch
    model_version: str | None = None

    def __len__(self) -> int:
        return len(self.confidence)

    def row(self, i: int) -> Prediction:
        return Prediction(
            probabilities=self.probabilities[i],
            direction=tuple(int(d) for d in self.direction[i]),
            confidence=float(self.confidence[i]),
            expected_return_bps=tuple(float(r) for r in self.expected_return_bps[i]),
            horizons_s=self.horizons_s,
            latency_ms=self.latency_ms,
            model_version=self.model_version,
        )


@dataclass(frozen=True)
class LatencyStats:
    """Latency of the recent single predictions (ms)."""

    count: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    last_ms: float
    over_budget: int  # predictions slower than LATENCY_BUDGET_MS


class Predictor:
    """A model and its preprocessor, ready to answer one window at a time.

    ``num_threads`` calls ``torch.set_num_threads`` (process-wide: torch has one intra-op pool); one or
    two threads give the lowest single-window latency for this small model.
    """

    def __init__(
        self,
        model: nn.Module,
        preprocessor: Preprocessor,
        manifest: ModelManifest | None = None,
        device: str = "cpu",
        *,
        num_threads: int | None = None,
        latency_window: int = 1000,
        batch_chunk: int = 1024,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"Predictor: model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(getattr(preprocessor, "transform", None)):
            raise TypeError(f"Predictor: preprocessor {type(preprocessor).__name__} has no transform()")
        if num_threads is not None:
            if num_threads < 1:
                raise ValueError(f"Predictor: num_threads must be ≥ 1, got {num_threads}")
            torch.set_num_threads(num_threads)
        cfg = getattr(model, "config", None)
        self.window = int(getattr(cfg, "window", WINDOW))
        self.n_features = int(getattr(cfg, "n_features", N_FEATURES))
        self.horizons_s: tuple[int, ...] = tuple(manifest.horizons_s) if manifest else HORIZONS_S
        n_horizons = int(getattr(cfg, "horizons", len(self.horizons_s)))
        if n_horizons != len(self.horizons_s):
            raise ValueError(
                f"Predictor: the model predicts {n_horizons} horizons, the manifest names {self.horizons_s}"
            )
        if manifest is not None:
            if len(manifest.feature_names) != self.n_features:
                raise ValueError(
                    f"Predictor: manifest {manifest.version} lists {len(manifest.feature_names)} features, "
                    f"the model takes {self.n_features}"
                )
            spec_hash = getattr(preprocessor, "spec_hash", None)
            if spec_hash is not None and spec_hash != manifest.feature_spec_hash:
                raise ValueError(
                    f"Predictor: the preprocessor's feature-spec hash {spec_hash} differs from manifest "
                    f"{manifest.version}'s {manifest.feature_spec_hash}"
                )
        if batch_chunk < 1:
            raise ValueError(f"Predictor: batch_chunk must be ≥ 1, got {batch_chunk}")
        # names for error messages
        self.feature_names: tuple[str, ...] = tuple(f"feature_{i}" for i in range(self.n_features))
        if manifest is not None:
            self.feature_names = tuple(manifest.feature_names)
        elif self.n_features == N_FEATURES:
            self.feature_names = FEATURE_NAMES
        self.manifest = manifest
        self.model_version = manifest.version if manifest else None
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.preprocessor = preprocessor
        self.batch_chunk = batch_chunk
        self._latencies_ms: deque[float] = deque(maxlen=latency_window)
        self._lock = threading.Lock()

    # -- input checks -----------------------------------------------------------------------------------

    def _check(self, x: Any, batched: bool, stage: str) -> np.ndarray:
        arr = np.asarray(x)
        expected = ("n", self.window, self.n_features) if batched else (self.window, self.n_features)
        ndim = 3 if batched else 2
        if arr.ndim != ndim or arr.shape[-2:] != (self.window, self.n_features) or (batched and not len(arr)):
            raise ValueError(f"Predictor: {stage} must have shape {expected}, got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise ValueError(f"Predictor: {stage} must be real numbers, got dtype {arr.dtype}")
        finite = np.isfinite(arr)
        if not finite.all():
            where = np.argwhere(~finite)[0]
            *sample, row, col = (int(v) for v in where)
            at = f"window {sample[0]}, " if sample else ""
            raise ValueError(
                f"Predictor: {stage} has {int((~finite).sum())} non-finite value(s), first at {at}row {row} "
                f"(feature {self.feature_names[col]!r}): {arr[tuple(where)]}"
            )
        return arr

    # -- prediction -------------------------------------------------------------------------------------

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device))
            probs = torch.softmax(out.direction_logits.double(), dim=-1).cpu().numpy()
            return probs, out.confidence.double().cpu().numpy(), out.expected_return.double().cpu().numpy()

    def _run(self, raw: Any, batched: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        arr = self._check(raw, batched, "windows" if batched else "window")
        scaled = self._check(self.preprocessor.transform(arr), batched, "the preprocessed window")
        if not batched:
            scaled = scaled[None]
        parts = [
            self._forward(scaled[i : i + self.batch_chunk]) for i in range(0, len(scaled), self.batch_chunk)
        ]
        probs, conf, ret = (np.concatenate(p) for p in zip(*parts, strict=True))
        if probs.shape[1:] != (len(self.horizons_s), N_CLASSES):
            raise ValueError(
                f"Predictor: the model returned probabilities of shape {probs.shape[1:]}, "
                f"expected ({len(self.horizons_s)}, {N_CLASSES})"
            )
        return probs, conf, ret

    def warm(self) -> float:
        """One forward pass on a zero window (allocations, lazy init); returns its latency in ms."""
        began = time.perf_counter_ns()
        self._forward(np.zeros((1, self.window, self.n_features), dtype=np.float32))
        return (time.perf_counter_ns() - began) / 1e6

    def predict(self, window: np.ndarray) -> Prediction:
        """Predict one (window, n_features) raw feature window (the rows up to and including t)."""
        began = time.perf_counter_ns()
        probs, conf, ret = self._run(window, batched=False)
        direction = tuple(int(c) - 1 for c in probs[0].argmax(axis=-1))
        latency = (time.perf_counter_ns() - began) / 1e6
        with self._lock:
            self._latencies_ms.append(latency)
        return Prediction(
            probabilities=probs[0],
            direction=direction,
            confidence=float(conf[0]),
            expected_return_bps=tuple(float(r) for r in ret[0]),
            horizons_s=self.horizons_s,
            latency_ms=latency,
            model_version=self.model_version,
        )

    def predict_batch(self, windows: np.ndarray) -> BatchPrediction:
        """Predict n (n, window, n_features) raw feature windows at once."""
        began = time.perf_counter_ns()
        probs, conf, ret = self._run(windows, batched=True)
        return BatchPrediction(
            probabilities=probs,
            direction=probs.argmax(axis=-1).astype(np.int64) - 1,
            confidence=conf,
            expected_return_bps=ret,
            horizons_s=self.horizons_s,
            latency_ms=(time.perf_counter_ns() - began) / 1e6,
            model_version=self.model_version,
        )

    def latency_stats(self) -> LatencyStats:
        """p50/p99/mean/max of the last ``latency_window`` single predictions (zeros before the first)."""
        with self._lock:
            lat = np.array(self._latencies_ms, dtype=np.float64)
        if not len(lat):
            return LatencyStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
        return LatencyStats(
            count=len(lat),
            mean_ms=float(lat.mean()),
            p50_ms=float(np.percentile(lat, 50)),
            p99_ms=float(np.percentile(lat, 99)),
            max_ms=float(lat.max()),
            last_ms=float(lat[-1]),
            over_budget=int((lat > LATENCY_BUDGET_MS).sum()),
        )
