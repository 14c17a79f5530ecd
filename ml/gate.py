"""The model gate: a version is promoted only when it beats, on the gate metric and by more than the
metric's interval, both the current production model and every other model of its own run.

**Evidence.** A training run leaves :class:`GateEvidence` with each version it registers
(``evaluation.npz`` beside the weights, its sha256 in the manifest): the test fold's labels and times,
every model's calibrated probabilities on it (the CNN-LSTM and each baseline) and the raw feature rows
the test windows read. The decision can therefore be recomputed from the registry alone, and the
production model — whatever its type — is re-evaluated on exactly the candidate's test fold through the
serving path (its own preprocessor and weights, ``ml.inference.Predictor``), so every comparison is
paired.

**Rule** (:func:`decide`), for a gate metric such as ``macro_f1_10s`` (``ml.evaluation.PROMOTION_METRIC``):

* the gain of the candidate over each comparator is a paired block-bootstrap interval
  (``ml.evaluation.bootstrap``; log-loss and ECE gains are reductions); a comparator is **beaten** when
  the whole 95 % interval of the gain lies above 0, i.e. the gain exceeds its own uncertainty;
* comparators: the best *other* model of the run by the metric's point value (for the CNN-LSTM that is
  the best baseline; for a baseline, the better of the CNN-LSTM and the other baselines), and the
  production model when there is one and it can serve the candidate's feature spec;
* promoted ⇔ every comparator is beaten. A tie keeps what is served: a swap has a cost and no evidence
  of gain. Production that cannot be evaluated on the fold (another feature spec, missing or corrupt
  files) cannot be served either, and is recorded as skipped.

Production may have been trained on rows of the candidate's test fold (a retrain over an overlapping
span): that favours production, so the gate errs towards keeping it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.evaluation.bootstrap import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    BlockBootstrap,
    Interval,
    default_block_ms,
    gain,
    time_block_ids,
)
from ml.evaluation.metrics import PROMOTION_METRIC, higher_is_better
from schemas.model import WINDOW, ModelManifest

if TYPE_CHECKING:
    from ml.registry import ModelRegistry, PromotionDecision

EVIDENCE_FILE = "evaluation.npz"


def split_metric(metric: str) -> tuple[str, int]:
    """``"macro_f1_10s"`` → ``("macro_f1", 10)``; raises naming the metric when it is not of that form."""
    name, _, horizon = metric.rpartition("_")
    if not name or not horizon.endswith("s") or not horizon[:-1].isdigit():
        raise ValueError(f"gate metric {metric!r} must be <metric>_<horizon>s, e.g. {PROMOTION_METRIC!r}")
    if name not in ("accuracy", "macro_f1", "log_loss", "ece"):
        raise ValueError(f"gate metric {metric!r}: {name!r} is not one of accuracy, macro_f1, log_loss, ece")
    return name, int(horizon[:-1])


@dataclass(frozen=True)
class GateConfig:
    """The gate metric and its interval."""

    metric: str = PROMOTION_METRIC
    n_resamples: int = DEFAULT_RESAMPLES
    confidence: float = DEFAULT_CONFIDENCE
    block_s: int | None = None  # None: twice the longest horizon
    seed: int = 0

    def __post_init__(self) -> None:
        split_metric(self.metric)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "n_resamples": self.n_resamples,
            "confidence": self.confidence,
            "block_s": self.block_s,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class GateEvidence:
    """A run's test fold: labels, every model's probabilities and the raw rows its windows read."""

    horizons_s: tuple[int, ...]
    ts_ms: np.ndarray  # (n,)
    symbols: np.ndarray  # (n,) str
    direction: np.ndarray  # (n, H) classes
    proba: Mapping[str, np.ndarray]  # model name → (n, H, 3), calibrated
    rows: np.ndarray  # (R, F) raw feature rows
    ends: np.ndarray  # (n,) index into rows of each window's last row

    def __post_init__(self) -> None:
        n = len(self.ts_ms)
        if n == 0:
            raise ValueError("gate evidence needs at least one test sample")
        if self.direction.shape != (n, len(self.horizons_s)) or len(self.symbols) != n or len(self.ends) != n:
            raise ValueError("gate evidence arrays disagree on the number of samples or horizons")
        for name, p in self.proba.items():
            if p.shape != (n, len(self.horizons_s), 3):
                raise ValueError(f"gate evidence: probabilities of {name} have shape {p.shape}")
        if self.ends.min() < WINDOW - 1 or self.ends.max() >= len(self.rows):
            raise ValueError("gate evidence: window ends must index rows with a full window before them")

    def windows(self) -> np.ndarray:
        """(n, WINDOW, F) the raw feature windows of the test samples (what a predictor is served)."""
        return self.rows[self.ends[:, None] + np.arange(-WINDOW + 1, 1)[None, :]]

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        names = list(self.proba)
        arrays: dict[str, np.ndarray] = {
            "horizons_s": np.asarray(self.horizons_s, dtype=np.int64),
            "ts_ms": self.ts_ms.astype(np.int64),
            "symbols": self.symbols.astype(str),
            "direction": self.direction.astype(np.int64),
            "model_names": np.asarray(names, dtype=str),
            "rows": self.rows.astype(np.float64),
            "ends": self.ends.astype(np.int64),
        }
        arrays.update(
            {f"proba_{i}": np.asarray(self.proba[n], dtype=np.float64) for i, n in enumerate(names)}
        )
        np.savez_compressed(buf, allow_pickle=False, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> GateEvidence:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            names = [str(n) for n in z["model_names"]]
            return cls(
                horizons_s=tuple(int(h) for h in z["horizons_s"]),
                ts_ms=z["ts_ms"],
                symbols=z["symbols"],
                direction=z["direction"],
                proba={n: z[f"proba_{i}"] for i, n in enumerate(names)},
                rows=z["rows"],
                ends=z["ends"],
            )

    @staticmethod
    def sha256(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()


def evidence_from_fold(
    horizons_s: Sequence[int],
    ts_ms: np.ndarray,
    symbols: np.ndarray,
    direction: np.ndarray,
    proba: Mapping[str, np.ndarray],
    raw_rows: np.ndarray,
    ends: np.ndarray,
) -> GateEvidence:
    """Evidence keeping only the raw rows the test windows read (``ends`` index ``raw_rows``)."""
    needed = np.unique((ends[:, None] + np.arange(-WINDOW + 1, 1)[None, :]).ravel())
    # Every row of every window is kept and their order too, so each window stays WINDOW consecutive rows.
    position = np.full(len(raw_rows), -1, dtype=np.int64)
    position[needed] = np.arange(len(needed))
    new_ends = position[ends]
    return GateEvidence(
        horizons_s=tuple(int(h) for h in horizons_s),
        ts_ms=np.asarray(ts_ms, dtype=np.int64),
        symbols=np.asarray(symbols).astype(str),
        direction=np.asarray(direction, dtype=np.int64),
        proba={k: np.asarray(v, dtype=np.float64) for k, v in proba.items()},
        rows=np.asarray(raw_rows[needed], dtype=np.float64),
        ends=new_ends,
    )


@dataclass(frozen=True)
class Comparison:
    """The candidate against one comparator on the gate metric: point values and the gain's interval."""

    against: str
    kind: str  # "run" (another model of the same run) or "production"
    candidate_value: float
    other_value: float
    gain: Interval
    beaten: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "kind": self.kind,
            "candidate_value": self.candidate_value,
            "other_value": self.other_value,
            "gain": self.gain.to_dict(),
            "beaten": self.beaten,
        }


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided, and every number behind it (stored with the version and audited)."""

    promoted: bool
    candidate: str  # the model's name in its run
    metric: str
    candidate_value: Interval
    comparisons: tuple[Comparison, ...]
    reason: str
    run_values: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # comparator → why it could not be evaluated
    bootstrap: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "promoted": self.promoted,
            "candidate": self.candidate,
            "metric": self.metric,
            "candidate_value": self.candidate_value.to_dict(),
            "comparisons": [c.to_dict() for c in self.comparisons],
            "reason": self.reason,
            "run_values": self.run_values,
            "skipped": self.skipped,
            "bootstrap": self.bootstrap,
            "config": self.config,
        }


def decide(
    evidence: GateEvidence,
    candidate: str,
    *,
    production: tuple[str, np.ndarray] | None = None,
    skipped: Mapping[str, str] | None = None,
    config: GateConfig | None = None,
) -> GateDecision:
    """Apply the rule of the module docstring. ``production`` is (version, its (n, H, 3) probabilities on
    the evidence's windows); ``skipped`` names comparators that could not be evaluated and why."""
    cfg = config or GateConfig()
    metric, horizon = split_metric(cfg.metric)
    if horizon not in evidence.horizons_s:
        raise ValueError(f"gate metric {cfg.metric}: horizon {horizon}s is not one of {evidence.horizons_s}")
    if candidate not in evidence.proba:
        raise ValueError(f"the run's evidence has no model {candidate!r} (has {sorted(evidence.proba)})")
    k = evidence.horizons_s.index(horizon)
    block_ms = 1000 * cfg.block_s if cfg.block_s else default_block_ms(evidence.horizons_s)
    boot = BlockBootstrap(  # one test fold: one series, all symbols of a time block together
        time_block_ids(np.zeros(len(evidence.ts_ms)), evidence.ts_ms, block_ms),
        n_resamples=cfg.n_resamples,
        confidence=cfg.confidence,
        seed=cfg.seed,
    )
    y = evidence.direction[:, k]
    values = {name: boot.intervals(p[:, k], y)[metric] for name, p in evidence.proba.items()}
    better = higher_is_better(cfg.metric)
    others = [n for n in evidence.proba if n != candidate]
    comparisons: list[Comparison] = []
    if others:
        best = max(others, key=lambda n: values[n].value if better else -values[n].value)
        comparisons.append(
            _compare(
                boot, evidence.proba[candidate][:, k], evidence.proba[best][:, k], y, metric, best, "run"
            )
        )
    if production is not None:
        version, proba = production
        comparisons.append(
            _compare(boot, evidence.proba[candidate][:, k], proba[:, k], y, metric, version, "production")
        )
    promoted = all(c.beaten for c in comparisons)
    cand = values[candidate]
    if promoted:
        reason = f"{candidate} {cfg.metric} {cand.value:.4f} beats " + (
            ", ".join(
                f"{c.against} by {c.gain.value:+.4f} [{c.gain.low:+.4f}, {c.gain.high:+.4f}]"
                for c in comparisons
            )
            or "nothing to compare with"
        )
    else:
        lost = [c for c in comparisons if not c.beaten]
        reason = f"{candidate} {cfg.metric} {cand.value:.4f} does not beat " + ", ".join(
            f"{c.against} ({c.kind}, {c.other_value:.4f}): gain {c.gain.value:+.4f} with interval "
            f"[{c.gain.low:+.4f}, {c.gain.high:+.4f}] not above 0"
            for c in lost
        )
    return GateDecision(
        promoted=promoted,
        candidate=candidate,
        metric=cfg.metric,
        candidate_value=cand,
        comparisons=tuple(comparisons),
        reason=reason,
        run_values={n: v.value for n, v in values.items()},
        skipped=dict(skipped or {}),
        bootstrap=boot.describe(),
        config=cfg.to_dict(),
    )


def _compare(
    boot: BlockBootstrap,
    cand: np.ndarray,
    other: np.ndarray,
    y: np.ndarray,
    metric: str,
    name: str,
    kind: str,
) -> Comparison:
    diff = boot.difference(cand, other, y)
    g = gain(diff, metric)
    point_c = boot.intervals(cand, y)[metric].value
    point_o = boot.intervals(other, y)[metric].value
    return Comparison(name, kind, point_c, point_o, g, g.low > 0)


def production_probabilities(
    registry: ModelRegistry,
    production: ModelManifest,
    evidence: GateEvidence,
    spec_hash: str,
    chunk: int = 512,
) -> np.ndarray:
    """The production model's probabilities on the evidence's windows, through the serving path
    (registry load → its preprocessor → ``Predictor.predict_batch``). Raises RegistryError or ValueError
    when it cannot serve them (another feature spec, missing files, other horizons)."""
    from ml.inference import Predictor
    from ml.preprocessing import FeaturePreprocessor

    loaded = registry.load(production.version, expected_spec_hash=spec_hash)
    if loaded.manifest.scaler is None:
        raise ValueError(f"production model {production.version} has no preprocessor in its manifest")
    if tuple(loaded.manifest.horizons_s) != evidence.horizons_s:
        raise ValueError(
            f"production model {production.version} predicts horizons {loaded.manifest.horizons_s}, "
            f"the candidate's fold is labelled at {list(evidence.horizons_s)}"
        )
    pre = FeaturePreprocessor.from_dict(loaded.manifest.scaler, expected_spec_hash=spec_hash)
    predictor = Predictor(loaded.model, pre, loaded.manifest)
    offsets = np.arange(-WINDOW + 1, 1)[None, :]
    parts = []
    for i in range(0, len(evidence.ends), chunk):
        ends = evidence.ends[i : i + chunk]
        parts.append(predictor.predict_batch(evidence.rows[ends[:, None] + offsets]).probabilities)
    return np.concatenate(parts)


def decide_for_version(
    registry: ModelRegistry, candidate: ModelManifest, production: ModelManifest | None, config: GateConfig
) -> PromotionDecision:
    """The gate for a registered version: its stored evidence, production re-evaluated on it, :func:`decide`."""
    from ml.registry import PromotionDecision, RegistryError

    metric = config.metric
    better = higher_is_better(metric)
    prod_version = None if production is None else production.version

    def refuse(reason: str) -> PromotionDecision:
        return PromotionDecision(
            False,
            candidate.version,
            metric,
            better,
            candidate.metrics.get(metric),
            prod_version,
            None,
            reason,
        )

    data = registry.evidence(candidate.version)
    if data is None:
        return refuse(
            f"{candidate.version} carries no gate evidence: it cannot be compared within an interval"
        )
    evidence = GateEvidence.from_bytes(data)
    run_name = str(candidate.params.get("run_model", "cnn_lstm"))
    if run_name not in evidence.proba:
        return refuse(f"{candidate.version}: its evidence has no predictions of {run_name!r}")
    compared: tuple[str, np.ndarray] | None = None
    skipped: dict[str, str] = {}
    if production is not None:
        try:
            compared = (
                production.version,
                production_probabilities(registry, production, evidence, candidate.feature_spec_hash),
            )
        except (RegistryError, ValueError) as exc:
            skipped[production.version] = f"cannot serve the candidate's fold: {exc}"
    gate = decide(evidence, run_name, production=compared, skipped=skipped, config=config)
    reason = gate.reason + (
        f"; production {prod_version} skipped: {skipped[prod_version]}" if prod_version in skipped else ""
    )
    prod_value = next((c.other_value for c in gate.comparisons if c.kind == "production"), None)
    return PromotionDecision(
        promoted=gate.promoted,
        version=candidate.version,
        metric=metric,
        higher_is_better=better,
        candidate_value=gate.candidate_value.value,
        production_version=prod_version,
        production_value=prod_value,
        reason=reason,
        gate=gate.to_dict(),
    )
