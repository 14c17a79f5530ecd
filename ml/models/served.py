"""The baselines as PyTorch modules, so that any model type is registered, verified and served the same way.

The registry stores a version as a plain tensor state dict loaded with ``torch.load(weights_only=True)``
and rebuilt from its manifest's params; the predictor calls ``model(windows) -> ModelOutput``. A fitted
scikit-learn estimator is neither (pickling it would let a model file run code on load), so
:func:`export_baseline` translates each baseline into a :class:`ServedBaseline` whose buffers hold the
fitted numbers exactly:

* majority → constant logits ln(prior);
* logistic regression → one linear map per horizon, the StandardScaler folded into the weights
  (w/σ, b − w·μ/σ); a two-class horizon becomes the logits (0, z) of its two classes;
* gradient boosting → every tree of every iteration as padded node tables (feature, threshold, left,
  right, leaf, value), walked for all trees at once, ``x <= threshold`` going left as in scikit-learn,
  summed onto the baseline prediction per class.

All arithmetic runs in float64 on the float32 inputs, so the module's probabilities equal the estimator's
``predict_proba`` to rounding (tested). A class absent from a horizon's training labels gets a logit of
−1e4 (probability 0), a single-class horizon predicts its class with certainty — as the baselines do.

Outputs besides the direction: the **confidence** is the primary horizon's largest probability (what a
calibrated classifier's "my direction is right" is), and the **expected return** is Σ_c p_c·m_c with m_c
the mean training move of class c per horizon. Both heads are temperature-scaled like the CNN-LSTM's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.models.baselines import Baseline, GradientBoostingBaseline, LogisticBaseline, MajorityBaseline
from ml.models.hybrid_cnn_lstm import ModelOutput
from schemas.model import N_CLASSES, WINDOW

SERVED_BASELINES = ("majority", "logistic", "gradient_boosting")
ABSENT_LOGIT = -1e4


@dataclass(frozen=True)
class ServedConfig:
    """What the predictor reads of a model's config: the input shape and the horizons."""

    n_features: int
    window: int = WINDOW
    horizons: int = 3


class _ConstantHead(nn.Module):
    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__()
        self.logits: torch.Tensor
        self.register_buffer("logits", torch.zeros(N_CLASSES, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], N_CLASSES)


class _LinearHead(nn.Module):
    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__()
        n = int(spec["n_features"])
        self.weight: torch.Tensor
        self.bias: torch.Tensor
        self.register_buffer("weight", torch.zeros(N_CLASSES, n, dtype=torch.float64))
        self.register_buffer("bias", torch.zeros(N_CLASSES, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias


class _TreeHead(nn.Module):
    """A forest of regression trees whose leaf values add onto class logits."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__()
        t, m = int(spec["n_trees"]), int(spec["max_nodes"])
        self.depth = int(spec["depth"])
        self.feature: torch.Tensor
        self.threshold: torch.Tensor
        self.left: torch.Tensor
        self.right: torch.Tensor
        self.leaf: torch.Tensor
        self.value: torch.Tensor
        self.tree_class: torch.Tensor
        self.base: torch.Tensor
        self.register_buffer("feature", torch.zeros(t, m, dtype=torch.int64))
        self.register_buffer("threshold", torch.zeros(t, m, dtype=torch.float64))
        self.register_buffer("left", torch.zeros(t, m, dtype=torch.int64))
        self.register_buffer("right", torch.zeros(t, m, dtype=torch.int64))
        self.register_buffer("leaf", torch.ones(t, m, dtype=torch.bool))
        self.register_buffer("value", torch.zeros(t, m, dtype=torch.float64))
        self.register_buffer("tree_class", torch.zeros(t, dtype=torch.int64))
        self.register_buffer("base", torch.zeros(N_CLASSES, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[0], self.feature.shape[0]
        trees = torch.arange(t, device=x.device)[None, :].expand(b, t)
        node = torch.zeros(b, t, dtype=torch.int64, device=x.device)
        for _ in range(self.depth):
            feat = self.feature[trees, node]
            go_left = torch.gather(x, 1, feat) <= self.threshold[trees, node]
            nxt = torch.where(go_left, self.left[trees, node], self.right[trees, node])
            node = torch.where(self.leaf[trees, node], node, nxt)
        leaf_values = self.value[trees, node]  # (B, T)
        out = self.base.expand(b, N_CLASSES).clone()
        return out.index_add(1, self.tree_class, leaf_values)


_HEADS: dict[str, type[nn.Module]] = {"constant": _ConstantHead, "linear": _LinearHead, "trees": _TreeHead}


class ServedBaseline(nn.Module):
    """A fitted baseline over the model input (B, window, n_features): it reads the last vector."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__()
        if spec.get("kind") not in SERVED_BASELINES:
            raise ValueError(
                f"served baseline kind must be one of {SERVED_BASELINES}, got {spec.get('kind')!r}"
            )
        heads = list(spec["heads"])
        self.kind = str(spec["kind"])
        self.primary_horizon = int(spec.get("primary_horizon", 0))
        self.config = ServedConfig(int(spec["n_features"]), int(spec.get("window", WINDOW)), len(heads))
        for head in heads:
            if head.get("type") not in _HEADS:
                raise ValueError(f"unknown baseline head type {head.get('type')!r}")
        self.heads = nn.ModuleList(
            _HEADS[h["type"]]({**h, "n_features": self.config.n_features}) for h in heads
        )
        self.temperature: torch.Tensor
        self.confidence_temperature: torch.Tensor
        self.class_move_bps: torch.Tensor
        self.register_buffer("temperature", torch.ones(len(heads), dtype=torch.float64))
        self.register_buffer("confidence_temperature", torch.ones((), dtype=torch.float64))
        self.register_buffer("class_move_bps", torch.zeros(len(heads), N_CLASSES, dtype=torch.float64))

    def set_temperatures(self, temperatures: Sequence[float], confidence: float = 1.0) -> None:
        """Set the calibration temperatures (``ml.calibration``); all must be > 0."""
        t = torch.as_tensor(list(temperatures), dtype=torch.float64)
        if t.shape != self.temperature.shape or not bool((t > 0).all()) or not confidence > 0:
            raise ValueError(
                f"temperatures must be {len(self.heads)} positive numbers, got {list(temperatures)}"
            )
        self.temperature.copy_(t)
        self.confidence_temperature.fill_(float(confidence))

    def forward(self, x: torch.Tensor) -> ModelOutput:
        cfg = self.config
        if x.ndim != 3 or x.shape[1] != cfg.window or x.shape[2] != cfg.n_features:
            raise ValueError(
                f"{self.kind} expects input (batch, {cfg.window}, {cfg.n_features}), got {tuple(x.shape)}"
            )
        last = x[:, -1, :].to(torch.float64)
        logits = torch.stack([head(last) for head in self.heads], dim=1) / self.temperature[None, :, None]
        proba = torch.softmax(logits, dim=-1)
        top = proba[:, self.primary_horizon].max(dim=-1).values.clamp(1e-12, 1 - 1e-12)
        conf_logit = torch.log(top) - torch.log1p(-top)
        conf_logit = conf_logit / self.confidence_temperature
        expected = (proba * self.class_move_bps[None]).sum(dim=-1)
        return ModelOutput(
            direction_logits=logits,
            confidence=torch.sigmoid(conf_logit),
            expected_return=expected,
            confidence_logit=conf_logit,
        )


def create_served_baseline(params: Mapping[str, Any]) -> ServedBaseline:
    """The registry's factory: ``params["baseline"]`` is the architecture written by :func:`export_baseline`."""
    if "baseline" not in params:
        raise ValueError("params of a served baseline must contain 'baseline' (written by export_baseline)")
    return ServedBaseline(params["baseline"])


# ---- export ------------------------------------------------------------------------------------------------


def _class_logits(classes: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Map the estimator's per-class columns to the three class slots; absent classes get ABSENT_LOGIT."""
    out = np.full((*raw.shape[:-1], N_CLASSES), ABSENT_LOGIT)
    out[..., classes] = raw
    return out


def _constant(logits: np.ndarray) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    return {"type": "constant"}, {"logits": torch.as_tensor(logits, dtype=torch.float64)}


def _export_logistic(model: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if isinstance(model, int):
        return _constant(_class_logits(np.array([model]), np.array([0.0])))
    scaler, clf = model[0], model[-1]
    classes = clf.classes_.astype(np.int64)
    coef, intercept = np.asarray(clf.coef_, np.float64), np.asarray(clf.intercept_, np.float64)
    if len(classes) == 2:  # binary: p1 = sigmoid(z) = softmax((0, z))[1]
        coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
        intercept = np.array([0.0, intercept[0]])
    w = coef / scaler.scale_[None, :]
    b = intercept - w @ scaler.mean_
    weight = np.zeros((N_CLASSES, w.shape[1]))
    weight[classes] = w
    bias = _class_logits(classes, b)
    return {"type": "linear"}, {
        "weight": torch.as_tensor(weight, dtype=torch.float64),
        "bias": torch.as_tensor(bias, dtype=torch.float64),
    }


def _export_trees(model: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if isinstance(model, int):
        return _constant(_class_logits(np.array([model]), np.array([0.0])))
    classes = model.classes_.astype(np.int64)
    trees = [tree for iteration in model._predictors for tree in iteration]
    per_iteration = model.n_trees_per_iteration_
    if any(tree.nodes["is_categorical"].any() for tree in trees):
        raise ValueError("gradient boosting with categorical splits cannot be served")
    max_nodes = max(len(tree.nodes) for tree in trees)
    depth = max(int(tree.nodes["depth"].max()) for tree in trees)
    t = len(trees)
    feature = np.zeros((t, max_nodes), np.int64)
    threshold = np.zeros((t, max_nodes))
    left = np.zeros((t, max_nodes), np.int64)
    right = np.zeros((t, max_nodes), np.int64)
    leaf = np.ones((t, max_nodes), bool)
    value = np.zeros((t, max_nodes))
    for i, tree in enumerate(trees):
        nodes = tree.nodes
        k = len(nodes)
        feature[i, :k], threshold[i, :k] = nodes["feature_idx"], nodes["num_threshold"]
        left[i, :k], right[i, :k] = nodes["left"], nodes["right"]
        leaf[i, :k], value[i, :k] = nodes["is_leaf"].astype(bool), nodes["value"]
    base_raw = np.asarray(model._baseline_prediction, np.float64).ravel()
    if per_iteration == 1:  # binary: one tree per iteration onto the second class's logit, the first stays 0
        tree_class = np.full(t, classes[1])
        base = _class_logits(classes, np.array([0.0, base_raw[0]]))
    else:
        tree_class = np.tile(classes, len(model._predictors))
        base = _class_logits(classes, base_raw)
    spec = {"type": "trees", "n_trees": t, "max_nodes": max_nodes, "depth": depth}
    tensors = {
        "feature": torch.as_tensor(feature),
        "threshold": torch.as_tensor(threshold),
        "left": torch.as_tensor(left),
        "right": torch.as_tensor(right),
        "leaf": torch.as_tensor(leaf),
        "value": torch.as_tensor(value),
        "tree_class": torch.as_tensor(tree_class),
        "base": torch.as_tensor(base),
    }
    return spec, tensors


def export_baseline(
    baseline: Baseline,
    *,
    n_features: int,
    class_move_bps: np.ndarray | None = None,
    temperatures: Sequence[float] | None = None,
    confidence_temperature: float = 1.0,
    primary_horizon: int = 0,
) -> tuple[ServedBaseline, dict[str, Any]]:
    """A fitted baseline as a :class:`ServedBaseline` and the architecture spec for its params.

    The baseline must have been fitted on already preprocessed features (no preprocessor of its own): the
    served module sits behind the version's FeaturePreprocessor, like the CNN-LSTM.
    """
    if getattr(baseline, "preprocessor", None) is not None:
        raise ValueError(
            f"{baseline.name}: export a baseline fitted on preprocessed features (preprocessor=None)"
        )
    heads: list[tuple[dict[str, Any], dict[str, torch.Tensor]]]
    if isinstance(baseline, MajorityBaseline):
        if baseline.priors_ is None:
            raise RuntimeError(f"{baseline.name}: fit before export")
        kind = "majority"
        heads = [_constant(np.log(np.maximum(p, 1e-300))) for p in baseline.priors_]
    elif isinstance(baseline, LogisticBaseline):
        kind = "logistic"
        heads = [_export_logistic(m) for m in baseline.models_]
    elif isinstance(baseline, GradientBoostingBaseline):
        kind = "gradient_boosting"
        heads = [_export_trees(m) for m in baseline.models_]
    else:
        raise ValueError(f"no served form for baseline {type(baseline).__name__}")
    if not heads:
        raise RuntimeError(f"{baseline.name}: fit before export")
    spec = {
        "kind": kind,
        "n_features": int(n_features),
        "window": WINDOW,
        "primary_horizon": primary_horizon,
        "heads": [h for h, _ in heads],
    }
    module = ServedBaseline(spec)
    state = module.state_dict()
    for i, (_, tensors) in enumerate(heads):
        for name, tensor in tensors.items():
            state[f"heads.{i}.{name}"] = tensor
    if class_move_bps is not None:
        state["class_move_bps"] = torch.as_tensor(np.asarray(class_move_bps, np.float64))
    module.load_state_dict(state, strict=True)
    if temperatures is not None:
        module.set_temperatures(temperatures, confidence_temperature)
    return module.eval(), spec


def class_mean_moves(direction: np.ndarray, movement_bps: np.ndarray) -> np.ndarray:
    """(H, 3) the mean move [bps] of each class per horizon in the training labels (0 for an absent class)."""
    out = np.zeros((direction.shape[1], N_CLASSES))
    for h in range(direction.shape[1]):
        for c in range(N_CLASSES):
            m = direction[:, h] == c
            out[h, c] = float(movement_bps[m, h].mean()) if m.any() else 0.0
    return out
