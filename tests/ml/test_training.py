"""Training: loss, early stopping, checkpoints and resume, seeds, clipping, and learning a window pattern."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ml.datasets import WindowedDataset
from ml.models import HybridCNNLSTM, ModelConfig, ModelOutput, create_model
from ml.models.baselines import LogisticBaseline, MajorityBaseline
from ml.training import (
    EarlyStopping,
    MultiTaskLoss,
    Trainer,
    TrainerConfig,
    balanced_class_weights,
    predict_arrays,
    predict_proba,
    resolve_device,
    seed_everything,
)
from tests.ml.synthetic_windows import TINY, pattern_dataset

torch.set_num_threads(1)

SMALL = ModelConfig(
    encoder_dim=4, cnn_channels=(16,), cnn_kernel_sizes=(5,), lstm_hidden=16, attention_dim=16
)
FAST = TrainerConfig(epochs=3, batch_size=64, learning_rate=3e-3, patience=10, scheduler="none", device="cpu")


def model_of(config: ModelConfig, seed: int = 0) -> HybridCNNLSTM:
    seed_everything(seed)
    return create_model(config)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def accuracy(proba: np.ndarray, ds: WindowedDataset) -> np.ndarray:
    return np.asarray((proba.argmax(axis=-1) == ds.direction).mean(axis=0))


@pytest.fixture(scope="module")
def small_data() -> tuple[WindowedDataset, WindowedDataset]:
    return pattern_dataset(400, seed=11), pattern_dataset(150, seed=12)


# -- the loss -----------------------------------------------------------------------------------------------


def _output(logits: torch.Tensor, conf_logit: torch.Tensor, ret: torch.Tensor) -> ModelOutput:
    return ModelOutput(logits, torch.sigmoid(conf_logit), ret, conf_logit)


def test_confidence_target_is_whether_the_primary_horizon_prediction_is_right() -> None:
    logits = torch.tensor([[[0.0, 0.0, 9.0]] * 3, [[9.0, 0.0, 0.0]] * 3])  # predicts up, then down
    direction = torch.tensor([[2, 0, 0], [2, 0, 0]])  # first right, second wrong at the primary horizon
    loss = MultiTaskLoss(direction_weight=0, confidence_weight=1, return_weight=0)
    ret, moves = torch.zeros(2, 3), torch.zeros(2, 3)
    right = loss(_output(logits, torch.tensor([20.0, -20.0]), ret), direction, moves)
    wrong = loss(_output(logits, torch.tensor([-20.0, 20.0]), ret), direction, moves)
    assert right.confidence < 1e-6 < 10 < wrong.confidence
    # with the primary horizon at 30 s both predictions are judged against class 0
    second = MultiTaskLoss(direction_weight=0, confidence_weight=1, return_weight=0, primary_horizon=1)
    assert second(_output(logits, torch.tensor([-20.0, 20.0]), ret), direction, moves).confidence < 1e-6


def test_loss_combines_the_three_tasks_with_their_weights() -> None:
    torch.manual_seed(0)
    out = _output(torch.randn(4, 3, 3), torch.randn(4), torch.randn(4, 3) * 30)
    direction, moves = torch.randint(0, 3, (4, 3)), torch.randn(4, 3) * 30
    parts = MultiTaskLoss(direction_weight=1.0, confidence_weight=0.5, return_weight=2.0)(
        out, direction, moves
    )
    assert torch.isclose(parts.total, parts.direction + 0.5 * parts.confidence + 2.0 * parts.expected_return)
    ce = torch.stack(
        [torch.nn.functional.cross_entropy(out.direction_logits[:, h], direction[:, h]) for h in range(3)]
    )
    assert torch.isclose(parts.direction, ce.mean())
    huber = torch.nn.functional.huber_loss(out.expected_return / 10, moves / 10)
    assert torch.isclose(parts.expected_return, huber)
    mse = MultiTaskLoss(return_loss="mse", return_scale_bps=5.0)(out, direction, moves).expected_return
    assert torch.isclose(mse, torch.nn.functional.mse_loss(out.expected_return / 5, moves / 5))
    with pytest.raises(ValueError, match="do not match"):
        MultiTaskLoss()(out, direction[:, :2], moves)


def test_balanced_class_weights() -> None:
    direction = np.array([[0, 1], [0, 1], [0, 1], [1, 1]])
    w = balanced_class_weights(direction)
    np.testing.assert_allclose(w[0], [4 / 9, 4 / 3, 1.0])  # class 2 absent: weight 1, never used
    np.testing.assert_allclose(w[1], [1.0, 4 / 12, 1.0])


def test_early_stopping_counts_epochs_without_a_large_enough_improvement() -> None:
    stop = EarlyStopping(patience=2, min_delta=0.1)
    assert stop.step(1.0, 0) and not stop.should_stop
    assert not stop.step(0.95, 1)  # better, but by less than min_delta
    assert stop.step(0.8, 2) and stop.bad_epochs == 0
    assert not stop.step(0.85, 3) and not stop.step(0.79, 4)
    assert stop.should_stop and (stop.best, stop.best_epoch) == (0.8, 2)
    with pytest.raises(FloatingPointError, match="nan"):
        stop.step(math.nan, 5)


# -- the trainer --------------------------------------------------------------------------------------------


def test_loss_decreases_on_a_learnable_task() -> None:
    train, val = pattern_dataset(800, seed=11), pattern_dataset(150, seed=12)
    history = Trainer(model_of(SMALL), replace(FAST, epochs=4)).fit(train, val)
    assert history.epochs_run == 4 and not history.stopped_early
    assert history.train_loss[-1] < history.train_loss[0] - 0.05
    assert min(history.val_loss) < history.val_loss[0]
    assert all(len(r.val_accuracy) == 3 for r in history.records)


def test_early_stopping_stops_and_restores_the_best_weights(
    small_data: tuple[WindowedDataset, WindowedDataset],
) -> None:
    train, val = small_data
    # min_delta so large that no epoch after the first counts as an improvement
    config = replace(FAST, epochs=10, patience=2, min_delta=1e3)
    model = model_of(TINY)
    history = Trainer(model, config).fit(train, val)
    assert history.stopped_early and history.epochs_run == 3 and history.best_epoch == 0
    assert history.best_val_loss == history.val_loss[0]
    once = model_of(TINY)
    Trainer(once, replace(config, epochs=1)).fit(train, val)
    assert same_weights(model, once)  # the weights after epoch 0, not after epoch 2
    assert not model.training


def test_same_seed_gives_identical_weights_and_another_seed_does_not(
    small_data: tuple[WindowedDataset, WindowedDataset],
) -> None:
    train, val = small_data
    runs = []
    for seed in (3, 3, 4):
        model = model_of(TINY, seed)
        Trainer(model, replace(FAST, epochs=2, seed=seed)).fit(train, val)
        runs.append(model)
    assert same_weights(runs[0], runs[1])
    assert not same_weights(runs[0], runs[2])


def test_a_resumed_run_ends_where_the_uninterrupted_run_ends(
    small_data: tuple[WindowedDataset, WindowedDataset], tmp_path: Path
) -> None:
    train, val = small_data
    config = replace(FAST, epochs=4, scheduler="plateau", scheduler_patience=0)
    whole = model_of(TINY)
    full = Trainer(whole, replace(config, checkpoint_dir=tmp_path / "whole")).fit(train, val)

    Trainer(model_of(TINY), replace(config, epochs=2, checkpoint_dir=tmp_path / "cut")).fit(train, val)
    resumed_model = model_of(TINY, seed=99)  # a fresh process would build the model anew
    resumed = Trainer(resumed_model, replace(config, checkpoint_dir=tmp_path / "cut")).fit(
        train, val, resume=True
    )

    assert resumed.resumed_from_epoch == 1 and resumed.epochs_run == 4
    assert resumed.train_loss == full.train_loss and resumed.val_loss == full.val_loss
    assert [r.learning_rate for r in resumed.records] == [r.learning_rate for r in full.records]
    assert same_weights(resumed_model, whole)
    last_whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    last_cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert last_cut["epoch"] == 3
    assert all(torch.equal(last_whole["model"][k], v) for k, v in last_cut["model"].items())
    best = torch.load(tmp_path / "whole" / "best.pt", weights_only=True)
    assert best["epoch"] == full.best_epoch


def test_resume_errors(small_data: tuple[WindowedDataset, WindowedDataset], tmp_path: Path) -> None:
    train, val = small_data
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(model_of(TINY), FAST).fit(train, val, resume=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"needs TrainerConfig\.checkpoint_dir"):
        Trainer(model_of(TINY), FAST).fit(train, val, resume=True)
    Trainer(model_of(TINY), replace(FAST, epochs=1, checkpoint_dir=tmp_path)).fit(train, val)
    other = replace(TINY, lstm_hidden=9)
    with pytest.raises(ValueError, match="does not fit this model"):
        Trainer(model_of(other), FAST).fit(train, val, resume=tmp_path / "last.pt")


def test_gradient_clipping_bounds_the_norm_at_every_step(
    small_data: tuple[WindowedDataset, WindowedDataset],
) -> None:
    train, val = small_data
    model = model_of(TINY)
    trainer = Trainer(model, replace(FAST, epochs=1, grad_clip_norm=1e-3))
    norms: list[float] = []

    def record(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        norms.append(float(torch.nn.utils.get_total_norm(grads)))

    trainer.optimizer.register_step_pre_hook(record)
    history = trainer.fit(train, val)
    assert len(norms) == math.ceil(len(train) / FAST.batch_size)
    assert max(norms) <= 1e-3 * (1 + 1e-4)
    assert history.records[0].max_grad_norm > 1e-2  # clipping really had something to clip
    assert history.records[0].max_clipped_grad_norm <= 1e-3 * (1 + 1e-4)


def test_cosine_schedule_follows_the_epochs(small_data: tuple[WindowedDataset, WindowedDataset]) -> None:
    train, val = small_data
    trainer = Trainer(model_of(TINY), replace(FAST, epochs=4, scheduler="cosine"))
    history = trainer.fit(train, val)
    expected = [FAST.learning_rate * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    np.testing.assert_allclose([r.learning_rate for r in history.records], expected, rtol=1e-9)


def test_plateau_schedule_halves_the_rate_after_a_val_loss_that_did_not_improve() -> None:
    # random labels: the validation loss cannot keep improving
    train, val = (
        pattern_dataset(400, seed=11, random_labels=True),
        pattern_dataset(150, seed=12, random_labels=True),
    )
    config = replace(FAST, epochs=4, learning_rate=1e-2, scheduler="plateau", scheduler_patience=0)
    trainer = Trainer(model_of(TINY), config)
    history = trainer.fit(train, val)
    rates = [r.learning_rate for r in history.records] + [trainer.optimizer.param_groups[0]["lr"]]
    assert rates[-1] < config.learning_rate
    for epoch, record in enumerate(history.records):
        improved = record.val_loss < min(history.val_loss[:epoch], default=math.inf) * (1 - 1e-4)
        assert rates[epoch + 1] == (rates[epoch] if improved else rates[epoch] / 2)


def test_balanced_class_weights_reach_the_loss(small_data: tuple[WindowedDataset, WindowedDataset]) -> None:
    train, _ = small_data
    trainer = Trainer(model_of(TINY), replace(FAST, class_weights="balanced"))
    weights = trainer._loss_fn(train).class_weights
    assert weights is not None
    np.testing.assert_allclose(weights.numpy(), balanced_class_weights(train.direction), rtol=1e-6)


def test_progress_bar_only_when_asked_or_on_a_terminal(
    small_data: tuple[WindowedDataset, WindowedDataset], capsys: pytest.CaptureFixture[str]
) -> None:
    train, val = small_data
    Trainer(model_of(TINY), replace(FAST, epochs=1)).fit(train, val)  # stderr is not a TTY under pytest
    assert capsys.readouterr().err == ""
    Trainer(model_of(TINY), replace(FAST, epochs=1, progress=True)).fit(train, val)
    assert "training" in capsys.readouterr().err


def test_fit_restores_the_global_determinism_switch(
    small_data: tuple[WindowedDataset, WindowedDataset],
) -> None:
    train, val = small_data
    before = torch.are_deterministic_algorithms_enabled()
    Trainer(model_of(TINY), replace(FAST, epochs=1)).fit(train, val)
    assert torch.are_deterministic_algorithms_enabled() == before


def test_bad_inputs_are_refused(small_data: tuple[WindowedDataset, WindowedDataset]) -> None:
    train, val = small_data
    trainer = Trainer(model_of(TINY), FAST)
    features = train.features.copy()
    features[100, 42] = np.inf
    with pytest.raises(ValueError, match=r"training features have non-finite values in columns \[42\]"):
        trainer.fit(replace(train, features=features), val)
    with pytest.raises(ValueError, match="validation dataset is empty"):
        trainer.fit(train, val.subset(np.array([], dtype=np.int64)))
    with pytest.raises(ValueError, match="class indices"):
        trainer.fit(train, replace(val, direction=val.direction - 1))
    with pytest.raises(ValueError, match="primary_horizon 5 is out of range"):
        Trainer(model_of(TINY), replace(FAST, primary_horizon=5)).fit(train, val)
    with pytest.raises(ValueError, match="scheduler must be one of"):
        TrainerConfig(scheduler="step")
    with pytest.raises(ValueError, match="unknown torch device"):
        TrainerConfig(device="gpu0")
    with pytest.raises(ValueError, match="grad_clip_norm"):
        TrainerConfig(grad_clip_norm=0.0)


def test_auto_device_is_cuda_only_when_available() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert TrainerConfig().to_dict()["device"] == "auto"


def test_predict_proba_is_a_distribution_per_horizon(
    small_data: tuple[WindowedDataset, WindowedDataset],
) -> None:
    _, val = small_data
    model = model_of(TINY).train()
    proba = predict_proba(model, val, batch_size=64)
    assert proba.shape == (len(val), 3, 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=-1), 1.0, atol=1e-12)
    assert model.training  # the caller's mode is restored
    arrays = predict_arrays(model, val)
    np.testing.assert_allclose(arrays.probabilities, proba, atol=1e-12)  # batch size does not matter
    assert arrays.confidence.shape == (len(val),) and arrays.expected_return_bps.shape == (len(val), 3)
    assert predict_proba(model, val.subset(np.array([], dtype=np.int64))).shape == (0, 3, 3)


@pytest.mark.slow
def test_cnn_lstm_clearly_beats_the_baselines_on_a_window_pattern() -> None:
    """The 10 s label is the mean of a latent over the last 10 rows: the window matters, the last row hardly."""
    train, val, test = (
        pattern_dataset(2000, seed=1),
        pattern_dataset(400, seed=2),
        pattern_dataset(800, seed=3),
    )
    model = model_of(ModelConfig())
    config = TrainerConfig(epochs=6, batch_size=64, learning_rate=3e-3, patience=2, device="cpu")
    history = Trainer(model, config).fit(train, val)
    model_acc = accuracy(predict_proba(model, test), test)[0]
    majority_acc = accuracy(MajorityBaseline().fit(train).predict_proba(test), test)[0]
    logistic_acc = accuracy(LogisticBaseline().fit(train).predict_proba(test), test)[0]
    assert majority_acc < 0.5
    assert model_acc > majority_acc + 0.15, (model_acc, majority_acc, history.val_loss)
    assert model_acc > logistic_acc + 0.1, (model_acc, logistic_acc)
