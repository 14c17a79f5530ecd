"""The ablation's variants: each changes its one thing, and the run's options reach every variant."""

from __future__ import annotations

from dataclasses import replace

import pytest

from depthcharge.commands.evaluate import PROTOCOL_RECORDINGS, RECORDINGS
from ml.candidate import quick_config, tuned_config
from ml.evaluation.ablation import VARIANTS, variant_config


def test_every_variant_but_base_changes_the_configuration() -> None:
    base = quick_config(seed=3, epochs=5)
    unchanged = [name for name in VARIANTS if name != "base" and variant_config(name, base) == base]
    assert unchanged == []
    assert variant_config("base", base) == base


@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "lr_1e-4"])  # that one sets its own epochs
def test_variants_keep_the_seed_and_epochs_they_were_given(name: str) -> None:
    config = variant_config(name, quick_config(seed=3, epochs=5))
    assert (config.trainer.seed, config.trainer.epochs) == (3, 5)


def test_unknown_variant_is_named() -> None:
    with pytest.raises(ValueError, match="nope"):
        variant_config("nope")


def test_held_out_recordings_share_no_seed_with_the_development_ones() -> None:
    held_out = {RECORDINGS[n][0] for n in PROTOCOL_RECORDINGS.split(",")}
    development = {RECORDINGS[n][0] for n in RECORDINGS if n.startswith("dev_")}
    assert held_out and development and not held_out & development


def test_combined_balanced_is_the_tuned_configuration_with_class_weights() -> None:
    config = variant_config("combined_balanced", quick_config(seed=3, epochs=5))
    tuned = tuned_config(seed=3, epochs=5)
    assert config.trainer.class_weights == "balanced"
    assert tuned.trainer.class_weights != "balanced"
    assert config == replace(tuned, trainer=replace(tuned.trainer, class_weights="balanced"))
    assert (config.model.last_row_skip, config.trainer.monitor, config.stride) == (True, "direction", 2)


@pytest.mark.parametrize(
    ("name", "changed"),
    [
        ("combined_lr_1e-4", lambda c: c.trainer.learning_rate == 1e-4),
        ("combined_dropout", lambda c: (c.model.dropout, c.trainer.weight_decay) == (0.5, 0.05)),
    ],
)
def test_combined_variants_change_one_thing_of_the_tuned_configuration(name: str, changed) -> None:  # type: ignore[no-untyped-def]
    config = variant_config(name, quick_config(seed=3, epochs=5))
    tuned = tuned_config(seed=3, epochs=5)
    assert changed(config) and not changed(tuned)
    assert (config.model.last_row_skip, config.trainer.monitor, config.stride) == (True, "direction", 2)
    assert replace(config, model=tuned.model, trainer=tuned.trainer) == tuned
