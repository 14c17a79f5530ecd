"""The hybrid CNN-LSTM: shapes, ranges, config round trip, gradients, determinism, its building blocks."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from ml.models import AttentionLayer, CNNBlock, HybridCNNLSTM, ModelConfig, ModelOutput, create_model
from tests.ml.synthetic_windows import TINY

torch.set_num_threads(1)

VARIANTS = {
    "tiny": TINY,
    "layer-norm-dot-attention": replace(TINY, norm="layer", attention="dot", activation="relu"),
    "no-norm-silu": replace(TINY, norm="none", activation="silu"),
    "bidirectional-2-layers": replace(TINY, bidirectional=True, lstm_layers=2),
    "no-channel-encoders-2-blocks": replace(
        TINY, channel_groups=(), cnn_channels=(8, 8), cnn_kernel_sizes=(5, 3)
    ),
    "no-cnn": replace(TINY, cnn_channels=(), cnn_kernel_sizes=()),
}


def _out(model: HybridCNNLSTM, batch: int = 4, seed: int = 0) -> ModelOutput:
    g = torch.Generator().manual_seed(seed)
    out: ModelOutput = model(torch.randn(batch, 60, 110, generator=g))
    return out


def test_default_model_takes_the_original_spec_input_and_returns_three_heads() -> None:
    torch.manual_seed(0)
    model = create_model()
    assert isinstance(model, HybridCNNLSTM) and model.config == ModelConfig()
    out = _out(model, batch=5)
    assert out.direction_logits.shape == (5, 3, 3)
    assert out.confidence.shape == (5,)
    assert out.expected_return.shape == (5, 3)
    assert ((out.confidence >= 0) & (out.confidence <= 1)).all()
    assert out["direction_logits"] is out.direction_logits  # readable as a dict too
    with pytest.raises(KeyError, match="nope"):
        out["nope"]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_has_the_same_output_contract(name: str) -> None:
    torch.manual_seed(1)
    model = create_model(VARIANTS[name])
    for training in (True, False):
        model.train(training)
        out = _out(model, batch=3)
        assert out.direction_logits.shape == (3, 3, 3)
        assert out.expected_return.shape == (3, 3)
        assert torch.isfinite(out.direction_logits).all() and torch.isfinite(out.expected_return).all()
        assert ((out.confidence >= 0) & (out.confidence <= 1)).all()


def test_a_single_window_works_in_eval_mode() -> None:
    # BatchNorm in train mode needs > 1 value per channel; in eval (serving) one window is the usual case
    model = create_model(TINY).eval()
    assert _out(model, batch=1).direction_logits.shape == (1, 3, 3)


def test_confidence_stays_in_unit_interval_for_extreme_inputs() -> None:
    torch.manual_seed(2)
    model = create_model(TINY).eval()
    out = model(torch.full((2, 60, 110), 1e4))
    assert ((out.confidence >= 0) & (out.confidence <= 1)).all()


def test_config_round_trips_through_json() -> None:
    for config in (ModelConfig(), *VARIANTS.values()):
        d = json.loads(json.dumps(config.to_dict()))
        assert ModelConfig.from_dict(d) == config
    assert ModelConfig().to_dict()["channel_groups"] == [[0, 50], [50, 75], [75, 110]]


def test_a_model_rebuilt_from_its_config_loads_the_state_dict() -> None:
    torch.manual_seed(3)
    model = create_model(VARIANTS["bidirectional-2-layers"]).eval()
    again = create_model(ModelConfig.from_dict(json.loads(json.dumps(model.config.to_dict())))).eval()
    again.load_state_dict(model.state_dict())
    x = torch.randn(2, 60, 110)
    assert torch.equal(model(x).direction_logits, again(x).direction_logits)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cnn_channels": (8, 8), "cnn_kernel_sizes": (3,)}, "one kernel size per block"),
        ({"norm": "group"}, "norm must be one of"),
        ({"attention": "multihead"}, "attention must be one of"),
        ({"dropout": 1.0}, "dropout"),
        ({"n_classes": 2}, "n_classes must be 3"),
        ({"lstm_hidden": 0}, "lstm_hidden"),
        ({"channel_groups": ((0, 50), (60, 110))}, "must tile"),
        ({"channel_groups": ((0, 50), (50, 75), (75, 100))}, "must tile"),
        ({"n_features": 20}, "must tile"),  # the default groups cover 110 features
    ],
)
def test_config_refuses_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)  # type: ignore[arg-type]


def test_from_dict_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown keys \['hidden_size'\]"):
        ModelConfig.from_dict({**ModelConfig().to_dict(), "hidden_size": 64})


@pytest.mark.parametrize("shape", [(2, 60), (2, 59, 110), (2, 60, 109), (60, 110)])
def test_forward_refuses_a_wrong_input_shape(shape: tuple[int, ...]) -> None:
    model = create_model(TINY)
    with pytest.raises(ValueError, match=r"expects input \(batch, 60, 110\)"):
        model(torch.zeros(shape))


def test_gradient_reaches_every_parameter() -> None:
    torch.manual_seed(4)
    model = create_model(replace(ModelConfig(), dropout=0.0))
    out = _out(model, batch=8)
    target = torch.randint(0, 3, (8, 3))
    loss = (
        torch.nn.functional.cross_entropy(out.direction_logits.reshape(-1, 3), target.reshape(-1))
        + out.confidence.mean()
        + out.expected_return.pow(2).mean()
    )
    loss.backward()  # type: ignore[no-untyped-call]
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} has no gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def test_same_seed_same_weights_and_outputs() -> None:
    def build(seed: int) -> HybridCNNLSTM:
        torch.manual_seed(seed)
        return create_model().eval()

    a, b, c = build(7), build(7), build(8)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    x = torch.randn(3, 60, 110)
    assert torch.equal(a(x).direction_logits, b(x).direction_logits)
    assert not torch.equal(a(x).direction_logits, c(x).direction_logits)


def test_cnn_block_adds_its_input_back_when_the_channel_count_is_kept() -> None:
    block = CNNBlock(6, 6, 3, norm="none", activation="relu", dropout=0.0)
    torch.nn.init.zeros_(block.conv.weight)
    assert block.conv.bias is not None  # without a norm the conv keeps its bias
    torch.nn.init.zeros_(block.conv.bias)
    x = torch.randn(2, 6, 10)
    assert torch.equal(block(x), x)  # relu(conv(x)) = 0: only the residual is left
    widen = CNNBlock(6, 4, 3, norm="batch")
    assert not widen.residual and widen(x).shape == (2, 4, 10)  # "same" padding keeps the 10 steps


@pytest.mark.parametrize("kind", ["additive", "dot"])
def test_attention_pools_with_weights_that_sum_to_one(kind: str) -> None:
    torch.manual_seed(5)
    layer = AttentionLayer(12, 8, kind)
    h = torch.randn(3, 20, 12)
    pooled, weights = layer(h)
    assert pooled.shape == (3, 12) and weights.shape == (3, 20)
    assert torch.allclose(weights.sum(dim=1), torch.ones(3))
    assert torch.allclose(pooled, (weights.unsqueeze(-1) * h).sum(dim=1), atol=1e-6)


def test_attention_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        AttentionLayer(4, 4, "cosine")
