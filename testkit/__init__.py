"""Fixtures shared by `tests/` and `bench/`, kept out of the production packages.

* `rows`: seeded generators of valid raw snapshot rows, trades and candles;
* `feature_reference`: an independent pandas implementation of the feature vector (the cross-check
  of `ml.features` and the baseline of `bench/features.py`);
* `market_checks`: the measurements behind the synthetic market's validation checks (stylised facts,
  predictability) used by the market tests and `bench/market.py`.

`testkit` is type-checked and linted with the rest of the tree but is not part of the installed
distribution (`[tool.setuptools.packages.find]` in pyproject.toml leaves it out).
"""
