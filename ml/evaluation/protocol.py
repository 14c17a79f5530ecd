"""The evaluation protocol: walk-forward folds over several recordings, every model on every fold, metrics
with block-bootstrap intervals, calibration and cost-aware backtests (``depthcharge evaluate``).

For each recording (labelled_features tables of its symbols, e.g. seeds with different regimes and one with
the scheduled shift inside), the windows are cut into ``n_folds`` expanding walk-forward folds
(``ml.datasets.walk_forward_splits``: each test block follows its training history, the last
``validation_fraction`` of that history validates, every boundary purged). On every fold
:func:`ml.candidate.fit_fold` trains and calibrates the CNN-LSTM and fits and calibrates every baseline
on the same rows; all models predict the same test block.

The summary pools the test blocks of all folds and recordings and gives, per model and horizon, accuracy,
macro-F1, log-loss and ECE with a 95 % block-bootstrap interval (``ml.evaluation.bootstrap``: time blocks
of ``block_s``, by default twice the longest horizon, stratified by recording × fold), the paired difference of the
CNN-LSTM against every baseline with its interval (a "win" is a difference whose interval excludes 0 on the
better side), the same per recording, calibration before and after, and a backtest of every model's 10 s
signals at taker and at maker fees.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

from ml.backtest import MAKER_FEE_BPS, TAKER_FEE_BPS, Trade, backtest, summarise
from ml.candidate import MODEL_NAME, CandidateConfig, fit_fold
from ml.datasets import LabelledRows, walk_forward_splits
from ml.evaluation.bootstrap import (
    BOOTSTRAP_METRICS,
    BlockBootstrap,
    Interval,
    default_block_ms,
    gain,
    time_block_ids,
)
from ml.evaluation.metrics import binary_ece, calibration_bins, clip_probabilities, expected_calibration_error
from schemas.model import N_CLASSES

FEES_BPS: dict[str, float] = {"taker": TAKER_FEE_BPS, "maker": MAKER_FEE_BPS}


@dataclass(frozen=True)
class RecordingData:
    """One recording's labelled_features tables (one per symbol) and how it was made."""

    name: str
    tables: Sequence[pa.Table]
    description: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProtocolConfig:
    """Folds, intervals and fees of the protocol."""

    n_folds: int = 3
    test_fraction: float = 0.15
    validation_fraction: float = 0.15
    block_s: int | None = None  # bootstrap block length; None: twice the longest horizon
    n_resamples: int = 1000
    confidence: float = 0.95
    fees_bps: tuple[tuple[str, float], ...] = tuple(FEES_BPS.items())
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_folds < 1:
            raise ValueError(f"n_folds must be ≥ 1, got {self.n_folds}")
        if not 0 < self.n_folds * self.test_fraction < 1:
            raise ValueError(
                f"{self.n_folds} folds × test fraction {self.test_fraction} must stay below 1: the folds' test "
                "blocks would cover the whole recording"
            )
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                "validation_fraction must be in (0, 1): the CNN-LSTM stops early and calibrates on it"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_folds": self.n_folds,
            "test_fraction": self.test_fraction,
            "validation_fraction": self.validation_fraction,
            "block_s": self.block_s,
            "n_resamples": self.n_resamples,
            "confidence": self.confidence,
            "fees_bps": dict(self.fees_bps),
            "seed": self.seed,
        }


@dataclass
class FoldRecord:
    """The test block of one fold with every model's predictions, and what training left behind."""

    recording: str
    fold: int
    n_train: int
    n_validation: int
    ts_ms: np.ndarray
    symbols: np.ndarray
    direction: np.ndarray  # (n, H) classes under the candidate's dead band
    movement_bps: np.ndarray
    proba: dict[str, np.ndarray]  # calibrated
    proba_raw: dict[str, np.ndarray]
    confidence: np.ndarray | None
    confidence_raw: np.ndarray | None
    history: dict[str, Any]
    calibration: dict[str, dict[str, Any] | None]
    trades: dict[str, dict[str, list[Trade]]]  # model → fee name → trades
    span_ms: int
    seconds: dict[str, float]

    @property
    def n_test(self) -> int:
        return len(self.ts_ms)


@dataclass
class ProtocolResult:
    """Every fold of every recording, and the summary computed from them."""

    config: CandidateConfig
    protocol: ProtocolConfig
    horizons_s: tuple[int, ...]
    recordings: list[dict[str, Any]]
    folds: list[FoldRecord]
    seconds: float

    @property
    def models(self) -> list[str]:
        return list(self.folds[0].proba) if self.folds else []

    def pooled(self, recording: str | None = None) -> dict[str, Any]:
        """Concatenated test blocks (of one recording, or all) with series and block ids."""
        folds = [f for f in self.folds if recording is None or f.recording == recording]
        if not folds:
            raise ValueError(f"no folds for recording {recording!r}")
        series = np.concatenate([np.full(f.n_test, f"{f.recording}/{f.fold}") for f in folds])
        ts = np.concatenate([f.ts_ms for f in folds])
        block_ms = (
            1000 * self.protocol.block_s if self.protocol.block_s else default_block_ms(self.horizons_s)
        )
        return {
            "series": series,
            "blocks": time_block_ids(series, ts, block_ms),
            "direction": np.concatenate([f.direction for f in folds]),
            "proba": {m: np.concatenate([f.proba[m] for f in folds]) for m in self.models},
            "proba_raw": {m: np.concatenate([f.proba_raw[m] for f in folds]) for m in self.models},
            "confidence": (
                np.concatenate([f.confidence for f in folds if f.confidence is not None])
                if all(f.confidence is not None for f in folds)
                else None
            ),
            "confidence_raw": (
                np.concatenate([f.confidence_raw for f in folds if f.confidence_raw is not None])
                if all(f.confidence_raw is not None for f in folds)
                else None
            ),
            "folds": folds,
        }

    def table(self, recording: str | None = None) -> dict[str, Any]:
        """Metrics with intervals per model and horizon, and the CNN-LSTM's paired differences."""
        data = self.pooled(recording)
        boot = BlockBootstrap(
            data["blocks"],
            strata=data["series"],
            n_resamples=self.protocol.n_resamples,
            confidence=self.protocol.confidence,
            seed=self.protocol.seed,
        )
        y = data["direction"]
        metrics: dict[str, dict[str, dict[str, Any]]] = {}
        versus: dict[str, dict[str, dict[str, Any]]] = {}
        for m in self.models:
            metrics[m] = {}
            for k, h in enumerate(self.horizons_s):
                ivs = boot.intervals(data["proba"][m][:, k], y[:, k])
                metrics[m][f"{h}s"] = {name: iv.to_dict() for name, iv in ivs.items()}
        for b in self.models:
            if b == MODEL_NAME:
                continue
            versus[b] = {}
            for k, h in enumerate(self.horizons_s):
                diff = boot.difference(data["proba"][MODEL_NAME][:, k], data["proba"][b][:, k], y[:, k])
                entry: dict[str, Any] = {}
                for name in BOOTSTRAP_METRICS:
                    g = gain(diff, name)
                    entry[name] = {**g.to_dict(), "verdict": _verdict(g)}
                versus[b][f"{h}s"] = entry
        return {
            "recording": recording or "all",
            "bootstrap": boot.describe(),
            "class_shares": _class_shares(y, self.horizons_s),
            "metrics": metrics,
            "cnn_lstm_gain_over": versus,
            "beats_every_baseline": _beats_every(versus, self.horizons_s),
        }

    def calibration(self) -> dict[str, Any]:
        """Test-block ECE of every model before and after temperature scaling, and the confidence head's."""
        data = self.pooled()
        y = data["direction"]
        out: dict[str, Any] = {"models": {}}
        for m in self.models:
            out["models"][m] = {
                f"{h}s": {
                    "ece_before": expected_calibration_error(data["proba_raw"][m][:, k], y[:, k]),
                    "ece_after": expected_calibration_error(data["proba"][m][:, k], y[:, k]),
                    "temperatures": [
                        None if (c := f.calibration.get(m)) is None else c["temperatures"][k]
                        for f in data["folds"]
                    ],
                }
                for k, h in enumerate(self.horizons_s)
            }
        if data["confidence"] is not None and data["confidence_raw"] is not None:
            right = (data["proba"][MODEL_NAME][:, 0].argmax(axis=1) == y[:, 0]).astype(float)
            out["confidence_head"] = {
                "ece_before": binary_ece(data["confidence_raw"], right),
                "ece_after": binary_ece(data["confidence"], right),
            }
        return out

    def reliability(self, model: str, horizon_index: int, calibrated: bool = True) -> np.ndarray:
        """(bins, 3) calibration bins (count, Σ confidence, Σ correct) of the pooled test blocks."""
        data = self.pooled()
        p = clip_probabilities((data["proba"] if calibrated else data["proba_raw"])[model][:, horizon_index])
        y = data["direction"][:, horizon_index]
        return calibration_bins(p.max(axis=1), p.argmax(axis=1) == y)

    def confusion(self, model: str, horizon_index: int) -> np.ndarray:
        """(3, 3) pooled confusion matrix [true, predicted]."""
        data = self.pooled()
        pred = data["proba"][model][:, horizon_index].argmax(axis=1)
        y = data["direction"][:, horizon_index]
        out = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
        np.add.at(out, (y, pred), 1)
        return out

    def backtests(self) -> dict[str, dict[str, Any]]:
        """Per model and fee: the pooled trades of every fold's test block, summarised."""
        out: dict[str, dict[str, Any]] = {}
        span = sum(f.span_ms for f in self.folds)
        for m in self.models:
            out[m] = {}
            for fee_name, fee in self.protocol.fees_bps:
                trades = [t for f in self.folds for t in f.trades[m][fee_name]]
                cfg = replace(self.config.backtest, fee_bps_per_side=fee)
                out[m][fee_name] = summarise(trades, cfg, span).summary()
        return out

    def equity(self, model: str, fee_name: str) -> np.ndarray:
        """Cumulative net PnL [bps] over the pooled trades in fold order (recording, fold, exit time)."""
        trades = [
            t for f in self.folds for t in sorted(f.trades[model][fee_name], key=lambda t: t.exit_ts_ms)
        ]
        return np.cumsum([t.net_bps for t in trades]) if trades else np.zeros(0)

    def summary(self) -> dict[str, Any]:
        """The JSON summary: configuration, the pooled and per-recording tables, calibration, backtests."""
        return {
            "candidate_config": self.config.to_params(),
            "protocol": self.protocol.to_dict(),
            "horizons_s": list(self.horizons_s),
            "recordings": self.recordings,
            "folds": [
                {
                    "recording": f.recording,
                    "fold": f.fold,
                    "n_train": f.n_train,
                    "n_validation": f.n_validation,
                    "n_test": f.n_test,
                    "epochs_run": len(f.history.get("records", [])),
                    "best_epoch": f.history.get("best_epoch"),
                    "seconds": {k: round(v, 2) for k, v in f.seconds.items()},
                }
                for f in self.folds
            ],
            "pooled": self.table(),
            "per_recording": {r["name"]: self.table(r["name"]) for r in self.recordings},
            "calibration": self.calibration(),
            "backtest": self.backtests(),
            "seconds": round(self.seconds, 1),
        }


def _verdict(g: Interval) -> str:
    if g.low > 0:
        return "win"
    if g.high < 0:
        return "loss"
    return "tie"


def _beats_every(
    versus: dict[str, dict[str, dict[str, Any]]], horizons_s: Sequence[int]
) -> dict[str, dict[str, bool]]:
    """Per horizon and metric (macro-F1, log-loss): does the CNN-LSTM win against every baseline?"""
    return {
        f"{h}s": {
            metric: all(versus[b][f"{h}s"][metric]["verdict"] == "win" for b in versus)
            for metric in ("macro_f1", "log_loss")
        }
        for h in horizons_s
    }


def _class_shares(y: np.ndarray, horizons_s: Sequence[int]) -> dict[str, list[float]]:
    return {
        f"{h}s": (np.bincount(y[:, k], minlength=N_CLASSES) / len(y)).round(4).tolist()
        for k, h in enumerate(horizons_s)
    }


def run_protocol(
    recordings: Sequence[RecordingData],
    config: CandidateConfig,
    protocol: ProtocolConfig | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> ProtocolResult:
    """Every fold of every recording (module docstring); ``log`` hears one line per fold."""
    protocol = protocol or ProtocolConfig()
    if not recordings:
        raise ValueError("the protocol needs at least one recording")
    began = time.perf_counter()
    folds: list[FoldRecord] = []
    horizons: tuple[int, ...] | None = None
    described = []
    for rec in recordings:
        rows = LabelledRows.from_tables(rec.tables)
        horizons = horizons or rows.horizons_s
        if rows.horizons_s != horizons:
            raise ValueError(f"recording {rec.name} has horizons {rows.horizons_s}, others {horizons}")
        raw_ds = rows.windowed(stride=config.stride)
        splits = walk_forward_splits(
            raw_ds,
            protocol.n_folds,
            protocol.test_fraction,
            validation_fraction=protocol.validation_fraction,
            interval_ms=rows.interval_ms,
        )
        described.append({"name": rec.name, **rec.description, "rows": len(rows), "windows": len(raw_ds)})
        for k, split in enumerate(splits):
            t0 = time.perf_counter()
            fit = fit_fold(rows, raw_ds, split, config)
            trades: dict[str, dict[str, list[Trade]]] = {}
            for name, model_fit in fit.fits.items():
                trades[name] = {}
                for fee_name, fee in protocol.fees_bps:
                    bt = backtest(model_fit.proba, fit.test, replace(config.backtest, fee_bps_per_side=fee))
                    trades[name][fee_name] = bt.trades
            horizon_ms = config.backtest.horizon_s * 1000
            record = FoldRecord(
                recording=rec.name,
                fold=k,
                n_train=len(split.train),
                n_validation=len(split.validation),
                ts_ms=fit.test.ts_ms,
                symbols=fit.test.symbols,
                direction=fit.test.direction,
                movement_bps=fit.test.movement_bps,
                proba={n: f.proba for n, f in fit.fits.items()},
                proba_raw={n: f.proba_raw for n, f in fit.fits.items()},
                confidence=fit.fits[MODEL_NAME].confidence,
                confidence_raw=fit.fits[MODEL_NAME].confidence_raw,
                history=fit.history.to_dict(),
                calibration={
                    n: None if f.calibration is None else f.calibration.to_dict() for n, f in fit.fits.items()
                },
                trades=trades,
                span_ms=int(fit.test.ts_ms.max()) + horizon_ms - int(fit.test.ts_ms.min()),
                seconds={**fit.seconds, "fold": time.perf_counter() - t0},
            )
            folds.append(record)
            if log is not None:
                log(_fold_line(record, horizons))
    assert horizons is not None
    return ProtocolResult(config, protocol, horizons, described, folds, time.perf_counter() - began)


def _fold_line(f: FoldRecord, horizons: Sequence[int]) -> str:
    from ml.evaluation.metrics import horizon_metrics

    parts = []
    for name, p in f.proba.items():
        rows = horizon_metrics(p, f.direction, horizons)
        parts.append(f"{name} F1 " + "/".join(f"{r.macro_f1:.3f}" for r in rows))
    epochs = len(f.history.get("records", []))
    return (
        f"{f.recording} fold {f.fold}: train {f.n_train:,} val {f.n_validation:,} test {f.n_test:,}; "
        f"{epochs} epochs (best {f.history.get('best_epoch')}) in {f.seconds['fold']:.0f} s; "
        + "; ".join(parts)
    )


def merge_results(results: Sequence[ProtocolResult]) -> ProtocolResult:
    """One result from runs of the same configuration over different recordings (e.g. one process per
    recording on a shared machine); refuses runs whose configuration, protocol or horizons differ."""
    if not results:
        raise ValueError("nothing to merge")
    first = results[0]
    for r in results[1:]:
        if (r.config, r.protocol, r.horizons_s) != (first.config, first.protocol, first.horizons_s):
            raise ValueError("cannot merge protocol results of different configurations")
    names = [rec["name"] for r in results for rec in r.recordings]
    if len(set(names)) != len(names):
        raise ValueError(f"a recording appears twice among the results to merge: {names}")
    return ProtocolResult(
        first.config,
        first.protocol,
        first.horizons_s,
        [rec for r in results for rec in r.recordings],
        [f for r in results for f in r.folds],
        sum(r.seconds for r in results),
    )
