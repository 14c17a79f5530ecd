from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from schemas.features import (
    CHANNEL_BOUNDS,
    DEFINITIONS_VERSION,
    FEATURE_GROUPS,
    FEATURE_NAMES,
    FEATURE_PARAMETERS,
    N_FEATURES,
    PRICE_FEATURES,
    Channel,
    feature_spec,
)

FEATURES_MD = Path(__file__).resolve().parents[3] / "shared" / "FEATURES.md"


def test_110_unique_names_in_three_channels() -> None:
    assert N_FEATURES == 110 and len(set(FEATURE_NAMES)) == 110
    assert CHANNEL_BOUNDS == {"orderbook": (0, 50), "candle": (50, 75), "indicator": (75, 110)}
    assert FEATURE_NAMES[0] == "bid_ask_spread_abs" and FEATURE_NAMES[-1] == "nvi"
    assert sum(len(g.features) for g in FEATURE_GROUPS if g.channel is Channel.CANDLE) == 25


@pytest.mark.skipif(not FEATURES_MD.exists(), reason="shared/FEATURES.md is not beside the checkout")
def test_names_order_and_version_match_features_md() -> None:
    text = FEATURES_MD.read_text()
    documented = [(int(n), name) for n, name in re.findall(r"^\| (\d+) \| ([a-z0-9_]+) \|", text, re.M)]
    assert documented == list(enumerate(FEATURE_NAMES, start=1))
    assert f"Definitions version: **{DEFINITIONS_VERSION}**" in text
    for section, name in re.findall(r"^### (\d\.\d) (.+?) \(#", text, re.M):
        assert any(
            g.name.endswith(name.lower().replace(" and ", "_").replace(" ", "_")) for g in FEATURE_GROUPS
        ), section


@pytest.mark.skipif(not FEATURES_MD.exists(), reason="shared/FEATURES.md is not beside the checkout")
def test_price_features_are_the_ones_features_md_tags_price() -> None:
    tagged = re.findall(r"^\| \d+ \| ([a-z0-9_]+) \| \[price\] ", FEATURES_MD.read_text(), re.M)
    assert set(tagged) == PRICE_FEATURES and len(tagged) == len(PRICE_FEATURES) == 28


def test_spec_hash_is_sha256_of_canonical_json() -> None:
    spec = feature_spec()
    obj = spec.hashed_object()
    assert set(obj) == {
        "definitions_version",
        "names",
        "channel_bounds",
        "parameters",
        "snapshot_interval_ms",
    }
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    assert spec.canonical_json() == canonical
    assert spec.spec_hash == hashlib.sha256(canonical.encode()).hexdigest()
    assert spec.spec_hash == feature_spec().spec_hash  # deterministic


def test_hash_changes_with_interval_parameters_and_version() -> None:
    base = feature_spec()
    assert feature_spec(500).spec_hash != base.spec_hash
    changed = dict(FEATURE_PARAMETERS, W_SHORT=11)
    from schemas.features import FeatureSpec

    assert FeatureSpec(parameters=changed).spec_hash != base.spec_hash
    assert FeatureSpec(definitions_version=2).spec_hash != base.spec_hash


def test_lookups_and_bad_inputs() -> None:
    spec = feature_spec()
    assert spec.index_of("nvi") == 109
    assert spec.group_of("kyle_lambda").name == "orderbook.liquidity"
    with pytest.raises(KeyError, match="unknown feature 'nope'"):
        spec.index_of("nope")
    with pytest.raises(ValueError, match="SNAPSHOT_INTERVAL_MS"):
        feature_spec(0)
