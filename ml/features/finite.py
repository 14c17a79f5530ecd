"""The finiteness rule of docs/features.md §1.5: a non-finite result becomes the feature's default and is counted.

On realistic data the count stays at zero (a test asserts it); the daemon exports it as the metric
`depthcharge_feature_values_replaced_total{feature}`, so a
definition that divides by zero in production shows up instead of silently feeding defaults to a model.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from schemas.features import FEATURE_NAMES

# Replacements per feature name since the process started (read by metrics and tests).
NON_FINITE_REPLACED: Counter[str] = Counter()


def replace_non_finite(values: np.ndarray, defaults: np.ndarray, first_index: int) -> np.ndarray:
    """Put ``defaults`` where ``values`` is NaN or ±inf, counting each replacement by feature name.

    ``values`` and ``defaults`` cover the features ``first_index`` … ``first_index + len(values) - 1``
    (0-based vector positions, i.e. docs/features.md # − 1). Returns ``values``, modified in place.
    """
    bad = ~np.isfinite(values)
    if bad.any():
        for i in np.flatnonzero(bad):
            NON_FINITE_REPLACED[FEATURE_NAMES[first_index + int(i)]] += 1
        values[bad] = defaults[bad]
    return values
