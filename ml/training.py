"""Training of the hybrid CNN-LSTM: multi-task loss, early stopping, checkpoints, seeded and resumable.

``Trainer(model, TrainerConfig(...)).fit(train, val)`` trains on two :class:`~ml.datasets.WindowedDataset`
(already preprocessed: the trainer feeds their windows to the model as they are) and returns a
:class:`TrainingHistory`; the model ends with the weights of its best validation epoch.

Batches are sliced from the dataset's per-row feature matrix one batch at a time (a batch sampler hands
the dataset a list of sample indices), so the (N, 60, 110) windows are never materialised.

Reproducibility: the shuffle order of epoch e comes from a generator seeded with (seed, e), dropout from
the global torch generator seeded at the start of ``fit`` and saved in every checkpoint, and deterministic
algorithms are switched on for the duration of ``fit`` (and restored after). Same seed, same data, same
thread count → bit-identical weights on CPU, and a run resumed from a checkpoint ends where the
uninterrupted run ends.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler
from tqdm import tqdm

from ml.datasets import WindowedDataset
from ml.models.hybrid_cnn_lstm import ModelOutput
from schemas.model import N_CLASSES

SCHEDULERS = ("plateau", "cosine", "none")
MONITORS = ("total", "direction")
CLASS_WEIGHTS = ("none", "balanced")
RETURN_LOSSES = ("huber", "mse")
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


@dataclass(frozen=True)
class TrainerConfig:
    """Every training setting. ``device="auto"`` takes CUDA when available, else the CPU."""

    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5  # epochs without a val-loss improvement > min_delta before stopping
    min_delta: float = 1e-4
    # The validation loss that early stopping, the best-weight restore and the plateau scheduler watch:
    # the multi-task total, or the direction cross-entropy alone (what the gate's metrics judge).
    monitor: str = "total"
    scheduler: str = "plateau"  # ReduceLROnPlateau on the val loss, per-epoch cosine, or none
    scheduler_patience: int = 2
    scheduler_factor: float = 0.5
    grad_clip_norm: float | None = 1.0
    direction_weight: float = 1.0
    confidence_weight: float = 0.2
    return_weight: float = 0.2
    return_loss: str = "huber"  # on movement / return_scale_bps
    huber_delta: float = 1.0
    class_weights: str = "none"  # "balanced": n / (3 · count) per horizon and class, from the training labels
    primary_horizon: int = 0  # index into horizons_s; the confidence head predicts this horizon's correctness
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None  # torch.set_num_threads for the process when set
    deterministic: bool = True
    checkpoint_dir: Path | None = None
    progress: bool | None = None  # None: a bar only when stderr is a terminal
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainerConfig.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.scheduler_patience < 0:
            raise ValueError(f"TrainerConfig.scheduler_patience must be ≥ 0, got {self.scheduler_patience}")
        if not self.learning_rate > 0:
            raise ValueError(f"TrainerConfig.learning_rate must be > 0, got {self.learning_rate}")
        for name in ("weight_decay", "min_delta", "direction_weight", "confidence_weight", "return_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"TrainerConfig.{name} must be ≥ 0, got {getattr(self, name)}")
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise ValueError(f"TrainerConfig.grad_clip_norm must be > 0 or None, got {self.grad_clip_norm}")
        if not 0 < self.scheduler_factor < 1:
            raise ValueError(f"TrainerConfig.scheduler_factor must be in (0, 1), got {self.scheduler_factor}")
        if self.monitor not in MONITORS:
            raise ValueError(f"TrainerConfig.monitor must be one of {MONITORS}, got {self.monitor!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"TrainerConfig.scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        if self.class_weights not in CLASS_WEIGHTS:
            raise ValueError(
                f"TrainerConfig.class_weights must be one of {CLASS_WEIGHTS}, got {self.class_weights!r}"
            )
        if self.return_loss not in RETURN_LOSSES:
            raise ValueError(
                f"TrainerConfig.return_loss must be one of {RETURN_LOSSES}, got {self.return_loss!r}"
            )
        if not self.huber_delta > 0:
            raise ValueError(f"TrainerConfig.huber_delta must be > 0, got {self.huber_delta}")
        if self.primary_horizon < 0:
            raise ValueError(f"TrainerConfig.primary_horizon must be ≥ 0, got {self.primary_horizon}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"TrainerConfig.num_threads must be ≥ 1 or None, got {self.num_threads}")
        resolve_device(self.device)  # refuse a bad device name now, not after loading data

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (for the manifest's params)."""
        out = asdict(self)
        out["checkpoint_dir"] = None if self.checkpoint_dir is None else str(self.checkpoint_dir)
        return out


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → ``cuda`` when available, else ``cpu``; any other name must be a torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown torch device {name!r}: {exc}") from None


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (call before creating the model)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic torch algorithms inside the block only: the switch is process-wide."""
    before = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    before_cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    if enabled:
        # warn_only: an op without a deterministic kernel (CUDA only, for this model) warns instead of failing
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before_cudnn


class LossParts(NamedTuple):
    total: torch.Tensor
    direction: torch.Tensor
    confidence: torch.Tensor
    expected_return: torch.Tensor


class MultiTaskLoss(nn.Module):
    """Weighted sum of the three tasks.

    * direction: cross-entropy per horizon (optionally class-weighted), averaged over horizons;
    * confidence: binary cross-entropy of the confidence against "the predicted class of the primary
      horizon is the true one" (a target that follows the direction head, so it is detached);
    * expected return: Huber (or MSE) on movement_bps / return_scale_bps, so that its size is comparable
      with the cross-entropies whatever the symbol's volatility.
    """

    def __init__(
        self,
        *,
        direction_weight: float = 1.0,
        confidence_weight: float = 0.2,
        return_weight: float = 0.2,
        return_scale_bps: float = 10.0,
        return_loss: str = "huber",
        huber_delta: float = 1.0,
        class_weights: torch.Tensor | None = None,  # (H, 3)
        primary_horizon: int = 0,
    ) -> None:
        super().__init__()
        if return_loss not in RETURN_LOSSES:
            raise ValueError(f"MultiTaskLoss return_loss must be one of {RETURN_LOSSES}, got {return_loss!r}")
        self.weights = (direction_weight, confidence_weight, return_weight)
        self.return_scale_bps = return_scale_bps
        self.return_loss = return_loss
        self.huber_delta = huber_delta
        self.primary_horizon = primary_horizon
        self.class_weights: torch.Tensor | None
        self.register_buffer("class_weights", class_weights)

    def forward(self, out: ModelOutput, direction: torch.Tensor, movement_bps: torch.Tensor) -> LossParts:
        logits = out.direction_logits
        horizons = logits.shape[1]
        if direction.shape != logits.shape[:2] or movement_bps.shape != logits.shape[:2]:
            raise ValueError(
                f"MultiTaskLoss: targets {tuple(direction.shape)} / {tuple(movement_bps.shape)} do not match "
                f"the logits' (batch, horizons) {tuple(logits.shape[:2])}"
            )
        ce = [
            F.cross_entropy(
                logits[:, h],
                direction[:, h],
                weight=None if self.class_weights is None else self.class_weights[h],
            )
            for h in range(horizons)
        ]
        direction_loss = torch.stack(ce).mean()
        p = self.primary_horizon
        correct = (logits[:, p].detach().argmax(dim=-1) == direction[:, p]).to(logits.dtype)
        confidence_loss = F.binary_cross_entropy_with_logits(out.confidence_logit, correct)
        pred = out.expected_return / self.return_scale_bps
        target = movement_bps / self.return_scale_bps
        if self.return_loss == "huber":
            return_loss = F.huber_loss(pred, target, delta=self.huber_delta)
        else:
            return_loss = F.mse_loss(pred, target)
        wd, wc, wr = self.weights
        total = wd * direction_loss + wc * confidence_loss + wr * return_loss
        return LossParts(total, direction_loss, confidence_loss, return_loss)


def balanced_class_weights(direction: np.ndarray) -> np.ndarray:
    """(H, 3) n / (3 · count) per horizon; a class absent from the labels gets 1 (it never weighs)."""
    counts = np.stack([np.bincount(col, minlength=N_CLASSES) for col in direction.T]).astype(np.float64)
    weights = len(direction) / (N_CLASSES * np.maximum(counts, 1.0))
    return np.where(counts > 0, weights, 1.0)


class EarlyStopping:
    """Stops after ``patience`` epochs without the monitored value falling more than ``min_delta``."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"EarlyStopping patience must be ≥ 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"EarlyStopping min_delta must be ≥ 0, got {min_delta}")
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.best_epoch = -1
        self.bad_epochs = 0

    def step(self, value: float, epoch: int) -> bool:
        """Record an epoch's value; True when it is a new best."""
        if not math.isfinite(value):
            raise FloatingPointError(f"EarlyStopping: the monitored value is {value} at epoch {epoch}")
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.bad_epochs = state["best"], state["best_epoch"], state["bad_epochs"]


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    val_direction_loss: float
    val_accuracy: list[float]  # per horizon
    learning_rate: float
    max_grad_norm: float  # largest gradient norm of the epoch, before clipping
    max_clipped_grad_norm: float  # … and after it
    seconds: float


@dataclass
class TrainingHistory:
    records: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    stopped_early: bool = False
    resumed_from_epoch: int | None = None  # the last completed epoch of the checkpoint resumed from

    @property
    def train_loss(self) -> list[float]:
        return [r.train_loss for r in self.records]

    @property
    def val_loss(self) -> list[float]:
        return [r.val_loss for r in self.records]

    @property
    def epochs_run(self) -> int:
        return len(self.records)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingHistory:
        return cls(
            records=[EpochRecord(**r) for r in d["records"]],
            best_epoch=d["best_epoch"],
            best_val_loss=d["best_val_loss"],
            stopped_early=d["stopped_early"],
            resumed_from_epoch=d["resumed_from_epoch"],
        )


class _WindowBatches(Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Map-style dataset indexed by a list of sample indices: one call slices one whole batch."""

    def __init__(self, ds: WindowedDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i = np.asarray(idx, dtype=np.int64)
        x = torch.from_numpy(np.ascontiguousarray(self.ds.windows(i), dtype=np.float32))
        y = torch.from_numpy(np.ascontiguousarray(self.ds.direction[i], dtype=np.int64))
        r = torch.from_numpy(np.ascontiguousarray(self.ds.movement_bps[i], dtype=np.float32))
        return x, y, r


def window_loader(
    ds: WindowedDataset, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None
) -> DataLoader[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Batches (windows (B, 60, F) float32, direction (B, H) int64, movement_bps (B, H) float32)."""
    batches = _WindowBatches(ds)
    sampler = RandomSampler(batches, generator=generator) if shuffle else SequentialSampler(batches)
    # batch_size=None: the BatchSampler's index lists go straight to __getitem__, no per-sample collation
    return DataLoader(batches, sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None)


def _check_dataset(ds: WindowedDataset, name: str, model: nn.Module) -> None:
    if len(ds) == 0:
        raise ValueError(f"Trainer.fit: the {name} dataset is empty")
    cfg = getattr(model, "config", None)
    if cfg is not None and (ds.n_features != cfg.n_features or len(ds.horizons_s) != cfg.horizons):
        raise ValueError(
            f"Trainer.fit: the {name} dataset has {ds.n_features} features and {len(ds.horizons_s)} horizons, "
            f"the model expects {cfg.n_features} and {cfg.horizons}"
        )
    if ds.direction.min() < 0 or ds.direction.max() >= N_CLASSES:
        raise ValueError(f"Trainer.fit: {name} direction labels must be class indices 0..{N_CLASSES - 1}")
    if not np.isfinite(ds.movement_bps).all():
        raise ValueError(f"Trainer.fit: {name} movement_bps has non-finite values")
    if not np.isfinite(ds.features).all():
        bad = np.unique(np.nonzero(~np.isfinite(ds.features))[1])
        raise ValueError(
            f"Trainer.fit: {name} features have non-finite values in columns {bad[:10].tolist()}"
        )


def _grad_norm(model: nn.Module) -> float:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0


class Trainer:
    """Trains one model; the optimizer and scheduler exist from construction (for hooks and inspection)."""

    def __init__(self, model: nn.Module, config: TrainerConfig | None = None) -> None:
        self.config = cfg = config or TrainerConfig()
        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device)
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        self.scheduler: (
            torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None
        )
        if cfg.scheduler == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=cfg.scheduler_factor, patience=cfg.scheduler_patience
            )
        elif cfg.scheduler == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.epochs)
        else:
            self.scheduler = None
        model_cfg = getattr(model, "config", None)
        self.return_scale_bps = float(getattr(model_cfg, "return_scale_bps", 10.0))

    # -- checkpoints ------------------------------------------------------------------------------------

    def _save(self, path: Path, payload: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)  # a crash mid-write leaves the previous checkpoint intact

    def _load_checkpoint(self, path: Path) -> dict[str, Any]:
        if not path.is_file():
            raise FileNotFoundError(f"Trainer: no checkpoint to resume from at {path}")
        state: dict[str, Any] = torch.load(path, map_location=self.device, weights_only=True)
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise ValueError(f"Trainer: checkpoint {path} does not fit this model: {exc}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"].cpu())  # map_location may have moved it to the GPU
        return state

    # -- training ---------------------------------------------------------------------------------------

    def _loss_fn(self, train: WindowedDataset) -> MultiTaskLoss:
        cfg = self.config
        if cfg.primary_horizon >= len(train.horizons_s):
            raise ValueError(
                f"TrainerConfig.primary_horizon {cfg.primary_horizon} is out of range for "
                f"{len(train.horizons_s)} horizons"
            )
        weights = None
        if cfg.class_weights == "balanced":
            weights = torch.as_tensor(balanced_class_weights(train.direction), dtype=torch.float32)
        return MultiTaskLoss(
            direction_weight=cfg.direction_weight,
            confidence_weight=cfg.confidence_weight,
            return_weight=cfg.return_weight,
            return_scale_bps=self.return_scale_bps,
            return_loss=cfg.return_loss,
            huber_delta=cfg.huber_delta,
            class_weights=weights,
            primary_horizon=cfg.primary_horizon,
        ).to(self.device)

    def _train_epoch(
        self, loader: DataLoader[Any], loss_fn: MultiTaskLoss, epoch: int
    ) -> tuple[float, float, float]:
        cfg = self.config
        self.model.train()
        total, count, max_norm, max_clipped = 0.0, 0, 0.0, 0.0
        for batch, (x, y, r) in enumerate(loader):
            x, y, r = x.to(self.device), y.to(self.device), r.to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(self.model(x), y, r).total
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"Trainer: the training loss is {loss.item()} at epoch {epoch}, batch {batch}"
                )
            loss.backward()
            if cfg.grad_clip_norm is not None:
                norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip_norm))
                clipped = _grad_norm(self.model)
            else:
                norm = clipped = _grad_norm(self.model)
            max_norm, max_clipped = max(max_norm, norm), max(max_clipped, clipped)
            self.optimizer.step()
            total += loss.item() * len(x)
            count += len(x)
        return total / count, max_norm, max_clipped

    @torch.no_grad()
    def _evaluate(self, loader: DataLoader[Any], loss_fn: MultiTaskLoss) -> tuple[float, float, list[float]]:
        self.model.eval()
        total, direction, count = 0.0, 0.0, 0
        correct: torch.Tensor | None = None
        for x, y, r in loader:
            x, y, r = x.to(self.device), y.to(self.device), r.to(self.device)
            out = self.model(x)
            parts = loss_fn(out, y, r)
            total += parts.total.item() * len(x)
            direction += parts.direction.item() * len(x)
            hits = (out.direction_logits.argmax(dim=-1) == y).sum(dim=0)
            correct = hits if correct is None else correct + hits
            count += len(x)
        assert correct is not None  # the loader is never empty: fit checks the dataset
        return total / count, direction / count, (correct.double() / count).tolist()

    def fit(
        self, train: WindowedDataset, val: WindowedDataset, *, resume: bool | Path = False
    ) -> TrainingHistory:
        """Train until ``epochs`` or early stopping; the model ends with its best validation weights.

        ``resume=True`` continues from ``checkpoint_dir/last.pt`` when it exists (else starts afresh);
        ``resume=<path>`` continues from that checkpoint and fails if it is missing.
        """
        cfg = self.config
        _check_dataset(train, "training", self.model)
        _check_dataset(val, "validation", self.model)
        loss_fn = self._loss_fn(train)
        stopper = EarlyStopping(cfg.patience, cfg.min_delta)
        history = TrainingHistory()
        best_state = copy.deepcopy(self.model.state_dict())
        start = 0
        seed_everything(cfg.seed)  # dropout draws; replaced by the checkpoint's generator state on resume
        ckpt_path = self._resume_path(resume)
        if ckpt_path is not None:
            state = self._load_checkpoint(ckpt_path)
            stopper.load_state_dict(state["early_stopping"])
            history = TrainingHistory.from_dict(state["history"])
            history.resumed_from_epoch = state["epoch"]
            best_state = state["best_model"]
            start = state["epoch"] + 1
        val_loader = window_loader(val, cfg.eval_batch_size, shuffle=False)
        show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
        with (
            _deterministic(cfg.deterministic),
            tqdm(
                total=cfg.epochs, initial=start, desc="training", unit="epoch", disable=not show, leave=False
            ) as bar,
        ):
            for epoch in range(start, cfg.epochs):
                if history.stopped_early:
                    break
                began = time.perf_counter()
                shuffle = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
                loader = window_loader(train, cfg.batch_size, shuffle=True, generator=shuffle)
                train_loss, max_norm, max_clipped = self._train_epoch(loader, loss_fn, epoch)
                val_loss, val_direction, val_acc = self._evaluate(val_loader, loss_fn)
                watched = val_direction if cfg.monitor == "direction" else val_loss
                lr = float(self.optimizer.param_groups[0]["lr"])
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    self.scheduler.step(watched)
                elif self.scheduler is not None:
                    self.scheduler.step()
                if stopper.step(watched, epoch):
                    best_state = copy.deepcopy(self.model.state_dict())
                    if cfg.checkpoint_dir is not None:
                        self._save(
                            cfg.checkpoint_dir / BEST_CHECKPOINT, {"model": best_state, "epoch": epoch}
                        )
                history.records.append(
                    EpochRecord(
                        epoch,
                        train_loss,
                        val_loss,
                        val_direction,
                        val_acc,
                        lr,
                        max_norm,
                        max_clipped,
                        time.perf_counter() - began,
                    )
                )
                history.best_epoch, history.best_val_loss = stopper.best_epoch, stopper.best
                history.stopped_early = stopper.should_stop and epoch + 1 < cfg.epochs
                if cfg.checkpoint_dir is not None:
                    self._save(
                        cfg.checkpoint_dir / LAST_CHECKPOINT,
                        {
                            "model": self.model.state_dict(),
                            "optimizer": self.optimizer.state_dict(),
                            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                            "epoch": epoch,
                            "early_stopping": stopper.state_dict(),
                            "best_model": best_state,
                            "history": history.to_dict(),
                            "rng": torch.get_rng_state(),
                        },
                    )
                bar.update(1)
                bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", best=stopper.best_epoch)
        self.model.load_state_dict(best_state)
        self.model.eval()
        return history

    def _resume_path(self, resume: bool | Path) -> Path | None:
        if resume is False:
            return None
        if resume is True:
            if self.config.checkpoint_dir is None:
                raise ValueError("Trainer.fit(resume=True) needs TrainerConfig.checkpoint_dir")
            path = self.config.checkpoint_dir / LAST_CHECKPOINT
            return path if path.is_file() else None
        return Path(resume)


@dataclass(frozen=True)
class PredictionArrays:
    """Model outputs over a dataset: probabilities (n, H, 3), confidence (n,), expected return (n, H) bps."""

    probabilities: np.ndarray
    confidence: np.ndarray
    expected_return_bps: np.ndarray


def predict_arrays(model: nn.Module, ds: WindowedDataset, batch_size: int = 1024) -> PredictionArrays:
    """All outputs of ``model`` on ``ds`` (eval mode, no grad; the model's mode is restored after)."""
    if len(ds) == 0:
        h = len(ds.horizons_s)
        return PredictionArrays(np.zeros((0, h, N_CLASSES)), np.zeros(0), np.zeros((0, h)))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    probs, conf, ret = [], [], []
    try:
        with torch.inference_mode():
            for x, _, _ in window_loader(ds, batch_size, shuffle=False):
                out: ModelOutput = model(x.to(device))
                probs.append(torch.softmax(out.direction_logits.double(), dim=-1).cpu().numpy())
                conf.append(out.confidence.double().cpu().numpy())
                ret.append(out.expected_return.double().cpu().numpy())
    finally:
        model.train(was_training)
    return PredictionArrays(np.concatenate(probs), np.concatenate(conf), np.concatenate(ret))


def predict_proba(model: nn.Module, ds: WindowedDataset, batch_size: int = 1024) -> np.ndarray:
    """(n, H, 3) float64 class probabilities (down, flat, up), the same interface as the baselines."""
    return predict_arrays(model, ds, batch_size).probabilities
