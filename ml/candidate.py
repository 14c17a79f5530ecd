"""One fold of training: what decides a candidate (:class:`CandidateConfig`) and :func:`fit_fold`, which the
single training run (``ml.workflow.train_candidate``) and every fold of the evaluation protocol
(``ml.evaluation.protocol``) share, so that what is evaluated is exactly what is registered and served.

A fold is a :class:`~ml.datasets.Split` of the windows of some labelled rows. :func:`fit_fold`

1. relabels the direction with the configured dead band (from the stored moves, no feature recomputed);
2. fits the FeaturePreprocessor on the rows the training windows read (row-local variants or a plain
   z-score) and applies it to every row;
3. trains the CNN-LSTM on the training block with early stopping on the validation block;
4. fits every baseline on the same preprocessed training block;
5. calibrates every model by temperature scaling on the validation block (``ml.calibration``);
6. predicts the test block with every model, before and after calibration.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.backtest import BacktestConfig
from ml.calibration import Calibration, apply_temperature, calibrate
from ml.datasets import InsufficientData, LabelledRows, Split, WindowedDataset, fit_preprocessor
from ml.labels import direction_of
from ml.models.baselines import Baseline, default_baselines
from ml.models.hybrid_cnn_lstm import HybridCNNLSTM, ModelConfig, ModelOutput, create_model
from ml.preprocessing import FeaturePreprocessor
from ml.training import (
    Trainer,
    TrainerConfig,
    TrainingHistory,
    predict_arrays,
    seed_everything,
    window_loader,
)

MODEL_NAME = "cnn_lstm"
BASELINE_NAMES = ("majority", "logistic", "gradient_boosting")
PREPROCESSING = ("row_local", "zscore")


def _regularised_model() -> ModelConfig:
    return ModelConfig(dropout=0.3)


def _regularised_trainer() -> TrainerConfig:
    return TrainerConfig(learning_rate=5e-4, weight_decay=1e-2)


@dataclass(frozen=True)
class CandidateConfig:
    """Everything that decides a candidate; stored in the manifest's params.

    The defaults regularise harder than the model's and trainer's own (dropout 0.3, weight decay 1e-2,
    learning rate 5e-4): on hours of one-second rows, the 60 candle and indicator features change once a
    minute and let an unregularised network memorise the minute.

    * ``preprocessing``: ``row_local`` (docs/features.md §7's single-row variants, then a z-score) or
      ``zscore`` (the raw values z-scored);
    * ``dead_band_bps``: the direction dead band the candidate is trained and judged on; None keeps the
      labels of the tables (``ml.labels``' default 0.5 bps), a number or one per horizon relabels;
    * ``calibrate``: temperature scaling of every model on the validation block;
    * ``baselines``: which baselines the run fits beside the CNN-LSTM (all three by default).
    """

    model: ModelConfig = field(default_factory=_regularised_model)
    trainer: TrainerConfig = field(default_factory=_regularised_trainer)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    stride: int = 1  # every stride-th window of a run becomes a sample
    preprocessing: str = "row_local"
    dead_band_bps: float | tuple[float, ...] | None = None
    calibrate: bool = True
    baselines: tuple[str, ...] = BASELINE_NAMES

    def __post_init__(self) -> None:
        if self.preprocessing not in PREPROCESSING:
            raise ValueError(
                f"CandidateConfig.preprocessing must be one of {PREPROCESSING}, got {self.preprocessing!r}"
            )
        if self.stride < 1:
            raise ValueError(f"CandidateConfig.stride must be ≥ 1, got {self.stride}")
        unknown = sorted(set(self.baselines) - set(BASELINE_NAMES))
        if unknown:
            raise ValueError(f"CandidateConfig.baselines: unknown {unknown}; known: {BASELINE_NAMES}")
        bands = self.dead_band_bps
        if bands is not None:
            values = bands if isinstance(bands, tuple) else (bands,)
            if any(not (np.isfinite(b) and b >= 0) for b in values):
                raise ValueError(f"CandidateConfig.dead_band_bps must be finite and ≥ 0, got {bands}")

    def to_params(self) -> dict[str, Any]:
        return {
            "model_config": self.model.to_dict(),
            "trainer": self.trainer.to_dict(),
            "backtest": asdict(self.backtest),
            "fractions": list(self.fractions),
            "stride": self.stride,
            "preprocessing": self.preprocessing,
            "dead_band_bps": list(self.dead_band_bps)
            if isinstance(self.dead_band_bps, tuple)
            else self.dead_band_bps,
            "calibrate": self.calibrate,
            "baselines": list(self.baselines),
        }


def quick_config(seed: int = 0, epochs: int = 12) -> CandidateConfig:
    """A small, fast configuration (the demo and tests): a narrow network and few epochs on the CPU."""
    base = CandidateConfig()
    return replace(
        base,
        model=replace(base.model, cnn_channels=(16, 16), lstm_hidden=32, head_hidden=32, attention_dim=16),
        trainer=replace(base.trainer, epochs=epochs, patience=3, seed=seed, progress=False, device="cpu"),
    )


def relabel(rows: LabelledRows, dead_band_bps: float | tuple[float, ...] | None) -> LabelledRows:
    """The rows with their direction recomputed from the stored moves at another dead band (None: as is)."""
    if dead_band_bps is None:
        return rows
    bands = dead_band_bps if isinstance(dead_band_bps, tuple) else (dead_band_bps,) * len(rows.horizons_s)
    if len(bands) != len(rows.horizons_s):
        raise ValueError(f"{len(bands)} dead bands for horizons {rows.horizons_s}")
    direction = np.stack(
        [direction_of(rows.movement_bps[:, k], b).astype(np.int64) + 1 for k, b in enumerate(bands)], axis=1
    ).reshape(rows.direction.shape)
    return replace(rows, direction=direction)


@dataclass
class ModelFit:
    """One model of a fold: its test probabilities before and after calibration, and the calibration."""

    name: str
    proba_raw: np.ndarray  # (n_test, H, 3)
    proba: np.ndarray  # calibrated (equal to proba_raw when calibration is off)
    calibration: Calibration | None
    confidence: np.ndarray | None = None  # (n_test,) the confidence head, calibrated (CNN-LSTM only)
    confidence_raw: np.ndarray | None = None


@dataclass
class FoldFit:
    """Everything one fold produced: the served objects (model, preprocessor, fitted baselines) and the
    test block's predictions of every model."""

    model: nn.Module
    preprocessor: FeaturePreprocessor
    history: TrainingHistory
    baselines: list[Baseline]
    fits: dict[str, ModelFit]
    train: WindowedDataset
    validation: WindowedDataset
    test: WindowedDataset
    rows: LabelledRows  # relabelled, raw features (for serving checks and the gate's evidence)
    seconds: dict[str, float]

    @property
    def names(self) -> list[str]:
        return list(self.fits)


def _confidence_logits(model: nn.Module, ds: WindowedDataset, batch_size: int = 1024) -> np.ndarray:
    model.eval()
    out = []
    with torch.inference_mode():
        for x, _, _ in window_loader(ds, batch_size, shuffle=False):
            o: ModelOutput = model(x)
            out.append(o.confidence_logit.double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def fit_fold(
    rows: LabelledRows,
    raw_ds: WindowedDataset,
    split: Split,
    config: CandidateConfig,
    *,
    baselines: bool = True,
) -> FoldFit:
    """Train and calibrate the CNN-LSTM and every baseline on one fold (module docstring).

    ``raw_ds`` must be ``rows.windowed(stride=config.stride)`` (raw features). ``split`` must have a
    non-empty validation block: early stopping and calibration on the test block would leak it.
    """
    if len(split.validation) == 0:
        raise InsufficientData(
            f"the validation fold is empty after the {split.purge_ms} ms purge "
            f"({len(split.train)} train, {len(split.test)} test samples): record more data"
        )
    seconds: dict[str, float] = {}
    rows = relabel(rows, config.dead_band_bps)
    raw_ds = replace(raw_ds, direction=rows.direction[raw_ds.ends])
    began = time.perf_counter()
    ds, preprocessor = fit_preprocessor(
        rows, raw_ds, split.train, row_local=config.preprocessing == "row_local"
    )
    train, val, test = (ds.subset(idx) for idx in (split.train, split.validation, split.test))
    seconds["preprocess"] = time.perf_counter() - began

    began = time.perf_counter()
    seed_everything(config.trainer.seed)
    model = create_model(config.model)
    history = Trainer(model, config.trainer).fit(train, val)
    seconds["cnn_lstm"] = time.perf_counter() - began

    fits: dict[str, ModelFit] = {}
    primary = config.trainer.primary_horizon
    val_out = predict_arrays(model, val)
    cal = (
        calibrate(
            val_out.probabilities,
            val.direction,
            confidence_logit=_confidence_logits(model, val),
            primary_horizon=primary,
        )
        if config.calibrate
        else None
    )
    raw_test = predict_arrays(model, test)
    conf_raw = raw_test.confidence
    if cal is not None and isinstance(model, HybridCNNLSTM):
        model.set_temperatures(cal.temperatures, cal.confidence_temperature)
    test_out = predict_arrays(model, test)
    fits[MODEL_NAME] = ModelFit(
        MODEL_NAME, raw_test.probabilities, test_out.probabilities, cal, test_out.confidence, conf_raw
    )

    fitted: list[Baseline] = []
    if baselines:
        for baseline in default_baselines(None, seed=config.trainer.seed):
            if baseline.name not in config.baselines:
                continue
            began = time.perf_counter()
            baseline.fit(train)
            seconds[baseline.name] = time.perf_counter() - began
            p_test = baseline.predict_proba(test)
            b_cal = calibrate(baseline.predict_proba(val), val.direction) if config.calibrate else None
            p_cal = apply_temperature(p_test, np.asarray(b_cal.temperatures)) if b_cal is not None else p_test
            fits[baseline.name] = ModelFit(baseline.name, p_test, p_cal, b_cal)
            fitted.append(baseline)
    return FoldFit(model, preprocessor, history, fitted, fits, train, val, test, rows, seconds)


def fitted_baseline(fold: FoldFit, name: str) -> Baseline:
    """The fitted baseline ``name`` of a fold."""
    for baseline in fold.baselines:
        if baseline.name == name:
            return baseline
    raise KeyError(f"no baseline {name!r} in this fold (have {[b.name for b in fold.baselines]})")


def calibrations(fold: FoldFit) -> Mapping[str, Calibration | None]:
    return {name: fit.calibration for name, fit in fold.fits.items()}


def tuned_config(seed: int = 0, epochs: int = 12) -> CandidateConfig:
    """The configuration the ablation study settled on (docs/ml.md, "Ablation"): quick_config's network
    with the changes that helped on the development recordings."""
    base = quick_config(seed=seed, epochs=epochs)
    return replace(
        base,
        model=replace(base.model, last_row_skip=True),
        trainer=replace(base.trainer, monitor="direction"),
        stride=2,  # neighbouring windows share 59 of 60 rows: every other one halves the cost, not the data
    )
