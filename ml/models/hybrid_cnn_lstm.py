"""The hybrid CNN-LSTM: multi-task prediction of direction, confidence and return from a 60-row window.

Input (B, 60, 110) preprocessed features (``ml.preprocessing.FeaturePreprocessor``). The layers, in order:

1. optional per-channel encoders: one linear map per feature channel (order book 0:50, candle 50:75,
   indicator 75:110, from ``schemas.features.CHANNEL_BOUNDS``) applied at every time step, so each
   channel's scale and correlations are learnt apart before they are mixed;
2. CNN blocks: Conv1d over time (local patterns over a few seconds), normalisation, activation,
   dropout, and an identity residual when the block keeps the channel count;
3. an LSTM over the 60 steps (longer dependencies);
4. attention pooling over the LSTM outputs (which steps matter), concatenated with the LSTM's final
   state;
5. three heads: direction logits (B, H, 3) per horizon, confidence (B,) in [0, 1], and the expected
   return (B, H) in bps;
6. temperature scaling (``ml.calibration``): the direction logits are divided by one temperature per
   horizon and the confidence logit by its own, buffers that stay 1 while training and are set from the
   validation fold afterwards, so a saved model serves calibrated probabilities.

The default sizes are small on purpose (about 30k parameters): it trains on CPU in seconds on ~10k
samples and answers a single window in well under the original spec's 10 ms.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from schemas.features import CHANNEL_BOUNDS, N_FEATURES
from schemas.model import HORIZONS_S, N_CLASSES, WINDOW

NORMS = ("batch", "layer", "none")
ACTIVATIONS = ("gelu", "relu", "silu")
ATTENTIONS = ("additive", "dot")

DEFAULT_CHANNEL_GROUPS: tuple[tuple[int, int], ...] = tuple(
    CHANNEL_BOUNDS[name] for name in ("orderbook", "candle", "indicator")
)


@dataclass(frozen=True)
class ModelConfig:
    """Every size and switch of the model; stored in the manifest as ``params["model_config"]``."""

    n_features: int = N_FEATURES
    window: int = WINDOW
    horizons: int = len(HORIZONS_S)
    n_classes: int = N_CLASSES
    # [start, end) feature ranges encoded apart before the CNN; () feeds the features to the CNN as they are.
    channel_groups: tuple[tuple[int, int], ...] = DEFAULT_CHANNEL_GROUPS
    encoder_dim: int = 8  # output width of each channel encoder
    cnn_channels: tuple[int, ...] = (32, 32)
    cnn_kernel_sizes: tuple[int, ...] = (5, 3)
    norm: str = "batch"
    activation: str = "gelu"
    lstm_hidden: int = 48
    lstm_layers: int = 1
    bidirectional: bool = False
    attention: str = "additive"
    attention_dim: int = 32
    head_hidden: int = 64
    dropout: float = 0.1
    # The return head predicts movement / return_scale_bps (order 1), the output is in bps.
    return_scale_bps: float = 10.0
    # Rows of the window the network reads, the newest last (None: all `window`); the input keeps `window`
    # rows, so the model input contract does not change when a model looks at less history.
    input_rows: int | None = None
    # A linear path from the decision-time vector (the baselines' whole input) to the heads' trunk, beside
    # the CNN-LSTM's summary (wide & deep): the network starts from what the baselines see.
    last_row_skip: bool = False

    def __post_init__(self) -> None:
        positive = ("n_features", "window", "horizons", "encoder_dim", "lstm_hidden", "lstm_layers")
        for name in (*positive, "attention_dim", "head_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.n_classes != 3:
            raise ValueError(f"ModelConfig.n_classes must be 3 (down, flat, up), got {self.n_classes}")
        if len(self.cnn_channels) != len(self.cnn_kernel_sizes):
            raise ValueError(
                f"ModelConfig: {len(self.cnn_channels)} cnn_channels but "
                f"{len(self.cnn_kernel_sizes)} cnn_kernel_sizes; give one kernel size per block"
            )
        if any(c < 1 for c in self.cnn_channels) or any(k < 1 for k in self.cnn_kernel_sizes):
            raise ValueError("ModelConfig: cnn_channels and cnn_kernel_sizes must be ≥ 1")
        if self.norm not in NORMS:
            raise ValueError(f"ModelConfig.norm must be one of {NORMS}, got {self.norm!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"ModelConfig.activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"ModelConfig.attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.input_rows is not None and not 1 <= self.input_rows <= self.window:
            raise ValueError(
                f"ModelConfig.input_rows must be in [1, {self.window}] or None, got {self.input_rows}"
            )
        if not (math.isfinite(self.return_scale_bps) and self.return_scale_bps > 0):
            raise ValueError(f"ModelConfig.return_scale_bps must be > 0, got {self.return_scale_bps}")
        if self.channel_groups:
            covered = sorted(self.channel_groups)
            if (
                covered[0][0] != 0
                or covered[-1][1] != self.n_features
                or any(a[1] != b[0] for a, b in itertools.pairwise(covered))
            ):
                raise ValueError(
                    f"ModelConfig.channel_groups {self.channel_groups} must tile [0, {self.n_features}) "
                    "without gaps or overlaps"
                )
            if any(end <= start for start, end in self.channel_groups):
                raise ValueError(f"ModelConfig.channel_groups {self.channel_groups} has an empty group")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: tuples become lists."""
        out = asdict(self)
        out["channel_groups"] = [list(g) for g in self.channel_groups]
        out["cnn_channels"] = list(self.cnn_channels)
        out["cnn_kernel_sizes"] = list(self.cnn_kernel_sizes)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused (a manifest from another model)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"ModelConfig.from_dict: unknown keys {unknown}; known keys are {sorted(known)}")
        kwargs = dict(d)
        if "channel_groups" in kwargs:
            kwargs["channel_groups"] = tuple(tuple(int(v) for v in g) for g in kwargs["channel_groups"])
        for key in ("cnn_channels", "cnn_kernel_sizes"):
            if key in kwargs:
                kwargs[key] = tuple(int(v) for v in kwargs[key])
        return cls(**kwargs)


@dataclass(frozen=True)
class ModelOutput:
    """What :meth:`HybridCNNLSTM.forward` returns; also readable as ``out["direction_logits"]``."""

    direction_logits: torch.Tensor  # (B, H, 3), classes down/flat/up
    confidence: torch.Tensor  # (B,) in [0, 1]
    expected_return: torch.Tensor  # (B, H) bps
    confidence_logit: torch.Tensor  # (B,) before the sigmoid: the loss uses it for numerical stability

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in {f.name for f in fields(self)}:
            raise KeyError(f"ModelOutput has no {key!r}")
        value: torch.Tensor = getattr(self, key)
        return value


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    return nn.SiLU() if name == "silu" else nn.GELU()


class _ChannelNorm(nn.Module):
    """Normalisation over the channel axis of a (B, C, T) tensor."""

    def __init__(self, kind: str, channels: int) -> None:
        super().__init__()
        self.kind = kind
        self.norm: nn.Module
        if kind == "batch":
            self.norm = nn.BatchNorm1d(channels)
        elif kind == "layer":
            self.norm = nn.LayerNorm(channels)
        else:
            self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "layer":  # LayerNorm normalises the last axis: move channels there and back
            out: torch.Tensor = self.norm(x.transpose(1, 2)).transpose(1, 2)
            return out
        result: torch.Tensor = self.norm(x)
        return result


class CNNBlock(nn.Module):
    """Conv1d over time → norm → activation → dropout, plus the input when the channel count is kept.

    Works on (B, C, T); "same" padding keeps T, so blocks stack and the LSTM sees every step.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        norm: str = "batch",
        activation: str = "gelu",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, padding="same", bias=norm == "none"
        )  # the norm's shift makes a conv bias redundant
        self.norm = _ChannelNorm(norm, out_channels)
        self.act = _activation(activation)
        self.dropout = nn.Dropout(dropout)
        self.residual = in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.dropout(self.act(self.norm(self.conv(x))))
        return out + x if self.residual else out


class AttentionLayer(nn.Module):
    """Attention pooling of a sequence (B, T, D) into (B, D), returning the weights (B, T) too.

    * ``additive`` (Bahdanau): score_t = vᵀ tanh(W h_t + b).
    * ``dot``: scaled dot product of each step's key W h_t with one learnt query, / √attention_dim.
    """

    def __init__(self, input_dim: int, attention_dim: int, kind: str = "additive") -> None:
        super().__init__()
        if kind not in ATTENTIONS:
            raise ValueError(f"AttentionLayer kind must be one of {ATTENTIONS}, got {kind!r}")
        self.kind = kind
        self.proj = nn.Linear(input_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1, bias=False)  # v for additive, the query for dot
        self.scale = 1.0 / math.sqrt(attention_dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = self.proj(h)
        if self.kind == "additive":
            scores = self.score(torch.tanh(keys)).squeeze(-1)
        else:
            scores = self.score(keys).squeeze(-1) * self.scale
        weights = torch.softmax(scores, dim=1)
        pooled = torch.bmm(weights.unsqueeze(1), h).squeeze(1)
        return pooled, weights


class HybridCNNLSTM(nn.Module):
    """Channel encoders → CNN blocks → LSTM → attention (+ final state) → direction / confidence / return."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ModelConfig()
        self.encoders = nn.ModuleList(
            nn.Linear(end - start, cfg.encoder_dim) for start, end in cfg.channel_groups
        )
        width = cfg.encoder_dim * len(cfg.channel_groups) if cfg.channel_groups else cfg.n_features
        self.encoder_act = _activation(cfg.activation) if cfg.channel_groups else nn.Identity()
        blocks: list[nn.Module] = []
        for channels, kernel in zip(cfg.cnn_channels, cfg.cnn_kernel_sizes, strict=True):
            blocks.append(
                CNNBlock(
                    width, channels, kernel, norm=cfg.norm, activation=cfg.activation, dropout=cfg.dropout
                )
            )
            width = channels
        self.cnn = nn.Sequential(*blocks)
        self.lstm = nn.LSTM(
            width,
            cfg.lstm_hidden,
            num_layers=cfg.lstm_layers,
            batch_first=True,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.lstm_layers > 1 else 0.0,  # torch warns about dropout on 1 layer
        )
        seq_dim = cfg.lstm_hidden * (2 if cfg.bidirectional else 1)
        self.attention = AttentionLayer(seq_dim, cfg.attention_dim, cfg.attention)
        self.skip = nn.Linear(cfg.n_features, cfg.head_hidden) if cfg.last_row_skip else None
        self.trunk = nn.Sequential(
            nn.Linear(2 * seq_dim, cfg.head_hidden), _activation(cfg.activation), nn.Dropout(cfg.dropout)
        )
        self.direction_head = nn.Linear(cfg.head_hidden, cfg.horizons * cfg.n_classes)
        self.confidence_head = nn.Linear(cfg.head_hidden, 1)
        self.return_head = nn.Linear(cfg.head_hidden, cfg.horizons)
        self.temperature: torch.Tensor
        self.confidence_temperature: torch.Tensor
        self.register_buffer("temperature", torch.ones(cfg.horizons))
        self.register_buffer("confidence_temperature", torch.ones(()))

    def set_temperatures(
        self, temperatures: tuple[float, ...] | list[float], confidence: float = 1.0
    ) -> None:
        """Set the calibration temperatures (one per horizon, and the confidence head's); all must be > 0."""
        t = torch.as_tensor(list(temperatures), dtype=self.temperature.dtype, device=self.temperature.device)
        if t.shape != self.temperature.shape or not bool((t > 0).all()) or not confidence > 0:
            raise ValueError(
                f"temperatures must be {self.temperature.numel()} positive numbers and a positive confidence "
                f"temperature, got {list(temperatures)} and {confidence}"
            )
        self.temperature.copy_(t)
        self.confidence_temperature.fill_(float(confidence))

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Versions saved before calibration existed carry no temperatures: they load uncalibrated (T = 1).
        for name in ("temperature", "confidence_temperature"):
            if prefix + name not in state_dict:
                state_dict[prefix + name] = getattr(self, name).detach().clone()
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, x: torch.Tensor) -> ModelOutput:
        cfg = self.config
        if x.ndim != 3 or x.shape[1] != cfg.window or x.shape[2] != cfg.n_features:
            raise ValueError(
                f"HybridCNNLSTM expects input (batch, {cfg.window}, {cfg.n_features}), got {tuple(x.shape)}"
            )
        raw_last = x[:, -1, :]
        if cfg.input_rows is not None:
            x = x[:, -cfg.input_rows :, :]
        if self.encoders:
            parts = [
                enc(x[:, :, start:end])
                for enc, (start, end) in zip(self.encoders, cfg.channel_groups, strict=True)
            ]
            x = self.encoder_act(torch.cat(parts, dim=-1))
        h = self.cnn(x.transpose(1, 2)).transpose(1, 2)  # Conv1d wants (B, C, T)
        seq, (h_n, _) = self.lstm(h)
        pooled, _ = self.attention(seq)
        # The attention starts as a plain mean over 60 steps, which drowns what the last seconds say; the
        # final state beside it gives the heads the most recent information from the first epoch on.
        directions = 2 if cfg.bidirectional else 1
        last = h_n[-directions:].transpose(0, 1).reshape(x.shape[0], -1)
        z = self.trunk(torch.cat([pooled, last], dim=-1))
        if self.skip is not None:
            z = z + self.skip(raw_last)
        logits = (
            self.direction_head(z).view(-1, cfg.horizons, cfg.n_classes) / self.temperature[None, :, None]
        )
        conf_logit = self.confidence_head(z).squeeze(-1) / self.confidence_temperature
        expected = self.return_head(z) * cfg.return_scale_bps
        return ModelOutput(
            direction_logits=logits,
            confidence=torch.sigmoid(conf_logit),
            expected_return=expected,
            confidence_logit=conf_logit,
        )


def create_model(config: ModelConfig | None = None) -> HybridCNNLSTM:
    """The model factory the registry calls: ``create_model(ModelConfig.from_dict(params["model_config"]))``."""
    return HybridCNNLSTM(config)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (for logs and manifests)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
