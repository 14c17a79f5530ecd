"""Named candidate configurations, so that a scheduled retraining, a Dagster run config or a command can
ask for a model size by name instead of spelling out every knob.

* ``full``: ``CandidateConfig()``, the regularised defaults of ``ml.workflow``;
* ``quick``: ``ml.workflow.quick_config`` (a narrow network, CPU-friendly; the demo's);
* ``tiny``: narrower still (one 8-channel convolution, an 8-unit LSTM): a smoke run of the pipeline in
  seconds, not a model to trade on.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from ml.workflow import CandidateConfig, quick_config

ProfileName = Literal["tiny", "quick", "full"]
PROFILES: tuple[ProfileName, ...] = ("tiny", "quick", "full")


def candidate_config(
    profile: str, *, epochs: int, seed: int = 0, learning_rate: float | None = None
) -> CandidateConfig:
    """The named configuration with its epochs, seed and (optionally) learning rate set."""
    if profile not in PROFILES:
        raise ValueError(f"unknown training profile {profile!r}: choose one of {', '.join(PROFILES)}")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if profile == "full":
        base = CandidateConfig()
        config = replace(base, trainer=replace(base.trainer, epochs=epochs, seed=seed, progress=False))
    else:
        config = quick_config(seed=seed, epochs=epochs)
    if profile == "tiny":
        config = replace(
            config,
            model=replace(
                config.model, cnn_channels=(8,), cnn_kernel_sizes=(3,), lstm_hidden=8, head_hidden=16
            ),
        )
    if learning_rate is not None:
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        config = replace(config, trainer=replace(config.trainer, learning_rate=learning_rate))
    return config
