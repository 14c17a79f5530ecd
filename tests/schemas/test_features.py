from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from schemas.features import (
    BOOK_TOPIC_DEPTH,
    CANDLE_WINDOW,
    CHANNEL_BOUNDS,
    DEFINITIONS_VERSION,
    FEATURE_GROUPS,
    FEATURE_NAMES,
    FEATURE_PARAMETERS,
    FEATURE_UNITS,
    N_FEATURES,
    PRICE_FEATURES,
    Channel,
    Unit,
    feature_spec,
)
from schemas.market import CANDLE_INTERVAL_MS
from schemas.snapshot import BOOK_DEPTH

FEATURES_DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def test_110_unique_names_in_three_channels() -> None:
    assert N_FEATURES == 110 and len(set(FEATURE_NAMES)) == 110
    assert CHANNEL_BOUNDS == {"orderbook": (0, 50), "candle": (50, 75), "indicator": (75, 110)}
    assert FEATURE_NAMES[0] == "bid_ask_spread_abs" and FEATURE_NAMES[-1] == "nvi"
    assert sum(len(g.features) for g in FEATURE_GROUPS if g.channel is Channel.CANDLE) == 25


def test_names_order_and_version_match_the_features_doc() -> None:
    text = FEATURES_DOC.read_text(encoding="utf-8")
    documented = [(int(n), name) for n, name in re.findall(r"^\| (\d+) \| ([a-z0-9_]+) \|", text, re.M)]
    assert documented == list(enumerate(FEATURE_NAMES, start=1))
    assert f"Definitions version: **{DEFINITIONS_VERSION}**" in text
    for section, name in re.findall(r"^### (\d\.\d) (.+?) \(#", text, re.M):
        assert any(
            g.name.endswith(name.lower().replace(" and ", "_").replace(" ", "_")) for g in FEATURE_GROUPS
        ), section


def test_price_features_are_the_ones_the_features_doc_tags_price() -> None:
    tagged = re.findall(
        r"^\| \d+ \| ([a-z0-9_]+) \| \[price\] ", FEATURES_DOC.read_text(encoding="utf-8"), re.M
    )
    assert set(tagged) == PRICE_FEATURES and len(tagged) == len(PRICE_FEATURES) == 28


def test_every_unit_is_the_one_the_features_doc_tags() -> None:
    documented = {
        name: tag.replace("\u2212", "-")  # the doc writes a typographic minus
        for name, tag in re.findall(
            r"^\| \d+ \| ([a-z0-9_]+) \| \[([^\]]+)\] ", FEATURES_DOC.read_text(encoding="utf-8"), re.M
        )
    }
    assert list(FEATURE_UNITS) == list(FEATURE_NAMES)
    assert {name: unit.value for name, unit in FEATURE_UNITS.items()} == documented
    assert frozenset(n for n, u in FEATURE_UNITS.items() if u is Unit.PRICE) == PRICE_FEATURES


def test_the_contract_constants_are_the_hashed_parameters_and_the_hash_stays_put() -> None:
    """BOOK_TOPIC_DEPTH, CANDLE_WINDOW and BOOK_DEPTH are the spec's parameters (one value each), and
    moving them into schemas left the spec hash that stored datasets and models carry unchanged."""
    assert FEATURE_PARAMETERS["BOOK_TOPIC_DEPTH"] == BOOK_TOPIC_DEPTH == 50
    assert FEATURE_PARAMETERS["CANDLE_WINDOW"] == CANDLE_WINDOW == 200
    assert FEATURE_PARAMETERS["BOOK_DEPTH"] == BOOK_DEPTH == 50
    assert FEATURE_PARAMETERS["CANDLE_INTERVAL_MINUTES"] * 60_000 == CANDLE_INTERVAL_MS
    assert feature_spec().spec_hash == "e90dbdf3fa98eabce745ada50d02c606b7c92e752cb3fd5db2486e72c75f8ea4"


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
