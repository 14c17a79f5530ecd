"""What a model sees instead of the raw 110 features: a fixed row-local transform, then a standard scaler.

**Row-local transform** (docs/features.md §7, restricted to what one 110-vector can tell by itself, so that training
and serving apply it to a window without any other state). Each column gets one kind, chosen from its unit
and channel in ``schemas.features.FEATURE_UNITS`` (three named exceptions, see ``_KIND_EXCEPTIONS``):

* ``bps_from_mid``: 1e4·ln(x/m*) with m* = mid_price of the row — book prices (micro_price, vwaps, cluster
  prices, support/resistance).
* ``frac_of_close``: x/C_0 − 1 with C_0 = close of the row — candle and indicator prices, and mid_price itself
  (§7's mid variant, a move over the last 60 rows, needs history; the mid's distance from the last close is
  the row-local substitute). close becomes the constant 0, which the scaler then zeroes (below).
* ``ratio_to_close``: x/C_0 — price differences (macd and its lines, atr_14, momentum_10).
* ``spread_bps``: 1e4·x/m* — bid_ask_spread_abs (the same as #2, kept so every column stays in place).
* ``depth_slog``: signed log1p(x / D) with D = (depth_bid_10 + depth_ask_10)/2 *of the row* — book sizes
  (§7 divides by the mean of D over the last 60 rows; one row has only its own D).
* ``slog``: sign(x)·log1p(|x|) — notionals, candle volumes and cumulative volume indices, rates, counts,
  kyle_lambda, amihud_illiquidity, volume_change_rate (§7 divides candle volumes by the mean of the last 20
  candles, which a row does not hold).
* ``log``: ln(x) — the ratios book_depth_ratio and volume_ma_ratio; ``log_nvi``: ln(nvi/1000).
* ``identity``: everything already in bps, fractions or bounded indices.

A denominator or argument that is zero, negative or non-finite gives 0 (the neutral value), and every non-finite
intermediate becomes 0, so the transform is finite on any input.

**Scaler**: mean and population standard deviation of every transformed column over the *training fold's rows
only* (``fit``), then z = (x − mean)/std clipped to ±``clip`` (default 10) so that an absurd serving input
cannot leave the range the model was trained on by orders of magnitude, nor overflow float32. A column with
zero variance in the training fold (a constant such as close's variant, or a feature that never moved) carries
no information the model learnt from: it is output as 0 whatever its value at serving time.

The fitted state is plain data (``to_dict``/``from_dict``, JSON-able and bit-exact), stored as
``ModelManifest.scaler`` with the feature-spec hash; loading checks that hash.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from schemas.features import FEATURE_GROUPS, FEATURE_UNITS, Channel, FeatureSpec, Unit, feature_spec

FORMAT_VERSION = 1
DEFAULT_CLIP = 10.0


def _kind_of(name: str, unit: Unit, channel: Channel) -> str:
    """The row-local transform of one feature, from its unit and channel (the module docstring's table)."""
    exception = _KIND_EXCEPTIONS.get(name)
    if exception is not None:
        return exception
    book = channel is Channel.ORDERBOOK
    if unit is Unit.PRICE:
        return "bps_from_mid" if book else "frac_of_close"
    if unit is Unit.PRICE_DIFF:
        return "spread_bps" if book else "ratio_to_close"
    if unit is Unit.BASE:
        return "depth_slog" if book else "slog"
    if unit in (Unit.USDT, Unit.PER_SECOND, Unit.COUNT, Unit.BPS_PER_MUSDT):
        return "slog"
    if unit is Unit.RATIO:
        return "log"
    return "identity"  # bps, fractions, percent, seconds, bounded indices


# Where the unit alone does not decide: mid_price is the reference of bps_from_mid, so it is measured from
# the close; volume_change_rate is a [frac] with a heavy right tail (capped at VOLUME_CHANGE_CAP); nvi is an
# index based at NVI_BASE.
_KIND_EXCEPTIONS = {"mid_price": "frac_of_close", "volume_change_rate": "slog", "nvi": "log_nvi"}
_KIND_OF: dict[str, str] = {
    name: _kind_of(name, FEATURE_UNITS[name], group.channel)
    for group in FEATURE_GROUPS
    for name in group.features
}
KINDS = (
    "identity",
    "bps_from_mid",
    "frac_of_close",
    "ratio_to_close",
    "spread_bps",
    "depth_slog",
    "slog",
    "log",
    "log_nvi",
)
_REFERENCE_COLUMNS = ("mid_price", "close", "depth_bid_10", "depth_ask_10")


def transform_kinds(names: tuple[str, ...] | list[str]) -> list[str]:
    """The row-local kind of each feature name (module docstring); unknown names stay as they are."""
    return [_KIND_OF.get(n, "identity") for n in names]


def _slog(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.sign(x) * np.log1p(np.abs(x)))


def _positive(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.isfinite(x) & (x > 0))


class FeaturePreprocessor:
    """Row-local transform + standard scaler fitted on the training fold (module docstring).

    Build it with :meth:`fit` (training rows only) or :meth:`from_dict`; apply it with :meth:`transform`.
    """

    def __init__(
        self,
        *,
        feature_names: list[str],
        kinds: list[str],
        mean: np.ndarray,
        scale: np.ndarray,
        constant: np.ndarray,
        spec_hash: str,
        clip: float = DEFAULT_CLIP,
        n_fit_rows: int = 0,
    ) -> None:
        n = len(feature_names)
        if len(kinds) != n or mean.shape != (n,) or scale.shape != (n,) or constant.shape != (n,):
            raise ValueError(
                f"preprocessor state is inconsistent: {n} names, {len(kinds)} kinds, mean {mean.shape}, "
                f"scale {scale.shape}, constant {constant.shape}"
            )
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown row-local transform kinds {unknown}; known: {KINDS}")
        missing = [c for c in _REFERENCE_COLUMNS if c not in feature_names]
        if missing:
            raise ValueError(f"feature names lack the reference columns {missing} the transform reads")
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("preprocessor mean/scale must be finite and scale > 0")
        if not (np.isfinite(clip) and clip > 0):
            raise ValueError(f"clip must be a positive number of standard deviations, got {clip}")
        self.feature_names = list(feature_names)
        self.kinds = list(kinds)
        self.mean = mean.astype(np.float64)
        self.scale = scale.astype(np.float64)
        self.constant = constant.astype(bool)
        self.spec_hash = spec_hash
        self.clip = float(clip)
        self.n_fit_rows = int(n_fit_rows)
        kind_arr = np.array(self.kinds)
        self._cols = {k: np.flatnonzero(kind_arr == k) for k in KINDS if k != "identity"}
        self._ref = {c: self.feature_names.index(c) for c in _REFERENCE_COLUMNS}

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    # ---- fitting -------------------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        *,
        spec: FeatureSpec | None = None,
        clip: float = DEFAULT_CLIP,
        row_local: bool = True,
    ) -> FeaturePreprocessor:
        """Fit the scaler on the (R, 110) raw feature rows of the training fold (and nothing else).

        ``row_local=False`` skips the row-local transform (every kind ``identity``: a plain clipped z-score of
        the raw values), the evaluation protocol's ablation of the input scaling.
        """
        spec = spec or feature_spec()
        x = np.asarray(features, dtype=np.float64)
        n = len(spec.names)
        if x.ndim != 2 or x.shape[1] != n:
            raise ValueError(f"fit needs training rows of shape (R, {n}), got {x.shape}")
        if x.shape[0] == 0:
            raise ValueError("fit needs at least one training row, got none")
        if not np.isfinite(x).all():
            row, col = (int(a[0]) for a in np.nonzero(~np.isfinite(x)))
            raise ValueError(f"training feature {spec.names[col]} of row {row} is not finite ({x[row, col]})")
        identity = cls(
            feature_names=list(spec.names),
            kinds=transform_kinds(spec.names) if row_local else ["identity"] * n,
            mean=np.zeros(n),
            scale=np.ones(n),
            constant=np.zeros(n, dtype=bool),
            spec_hash=spec.spec_hash,
            clip=clip,
        )
        t = identity.row_local(x)
        mean = t.mean(axis=0)
        std = np.sqrt(((t - mean) ** 2).mean(axis=0))  # two-pass, population normalisation
        constant = ~(std > 1e-12 * np.maximum(1.0, np.abs(mean)))
        scale = np.where(constant, 1.0, std)
        return cls(
            feature_names=list(spec.names),
            kinds=identity.kinds,
            mean=mean,
            scale=scale,
            constant=constant,
            spec_hash=spec.spec_hash,
            clip=clip,
            n_fit_rows=x.shape[0],
        )

    # ---- applying ------------------------------------------------------------------------------------------

    def row_local(self, features: np.ndarray) -> np.ndarray:
        """The row-local transform alone, float64, finite; any leading shape (..., n_features)."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim < 1 or x.shape[-1] != self.n_features:
            raise ValueError(f"features must have shape (..., {self.n_features}), got {x.shape}")
        flat = x.reshape(-1, self.n_features)
        out = flat.copy()
        mid = flat[:, self._ref["mid_price"]]
        close = flat[:, self._ref["close"]]
        with np.errstate(all="ignore"):  # overflow, 0/0 … on absurd input end up as 0 below
            depth = (flat[:, self._ref["depth_bid_10"]] + flat[:, self._ref["depth_ask_10"]]) / 2
            c = self._cols["bps_from_mid"]
            v = flat[:, c]
            out[:, c] = np.where(_positive(v) & _positive(mid)[:, None], 1e4 * np.log(v / mid[:, None]), 0.0)
            ok_close = _positive(close)[:, None]
            c = self._cols["frac_of_close"]
            out[:, c] = np.where(ok_close, flat[:, c] / close[:, None] - 1.0, 0.0)
            c = self._cols["ratio_to_close"]
            out[:, c] = np.where(ok_close, flat[:, c] / close[:, None], 0.0)
            c = self._cols["spread_bps"]
            out[:, c] = np.where(_positive(mid)[:, None], 1e4 * flat[:, c] / mid[:, None], 0.0)
            c = self._cols["depth_slog"]
            out[:, c] = np.where(_positive(depth)[:, None], _slog(flat[:, c] / depth[:, None]), 0.0)
            c = self._cols["slog"]
            out[:, c] = _slog(flat[:, c])
            c = self._cols["log"]
            out[:, c] = np.where(_positive(flat[:, c]), np.log(flat[:, c]), 0.0)
            c = self._cols["log_nvi"]
            out[:, c] = np.where(_positive(flat[:, c]), np.log(flat[:, c] / 1000.0), 0.0)
        out[~np.isfinite(out)] = 0.0
        return out.reshape(x.shape)

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Row-local transform then scaling: float32 of the input's shape, e.g. (R, 110) or (n, 60, 110)."""
        t = self.row_local(features)
        with np.errstate(all="ignore"):
            z = (t - self.mean) / self.scale
        z = np.clip(np.nan_to_num(z, nan=0.0, posinf=self.clip, neginf=-self.clip), -self.clip, self.clip)
        z[..., self.constant] = 0.0
        return z.astype(np.float32)

    def check_spec(self, spec_hash: str) -> None:
        """Raise when this preprocessor was fitted under another feature spec than ``spec_hash``."""
        if spec_hash != self.spec_hash:
            raise ValueError(
                f"preprocessor was fitted under feature spec {self.spec_hash}, refusing it for spec {spec_hash}"
            )

    # ---- storage -------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (Python floats round-trip exactly through JSON)."""
        return {
            "type": "FeaturePreprocessor",
            "format_version": FORMAT_VERSION,
            "spec_hash": self.spec_hash,
            "feature_names": list(self.feature_names),
            "kinds": list(self.kinds),
            "mean": [float(v) for v in self.mean],
            "scale": [float(v) for v in self.scale],
            "constant": [bool(v) for v in self.constant],
            "clip": self.clip,
            "n_fit_rows": self.n_fit_rows,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, expected_spec_hash: str | None = None) -> FeaturePreprocessor:
        """Rebuild from :meth:`to_dict`; with ``expected_spec_hash``, refuse another spec's preprocessor."""
        if not isinstance(d, dict) or d.get("type") != "FeaturePreprocessor":
            raise ValueError("not a FeaturePreprocessor dict (type field missing or different)")
        if d.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"FeaturePreprocessor format_version {d.get('format_version')!r} is not {FORMAT_VERSION}"
            )
        missing = [
            k
            for k in ("spec_hash", "feature_names", "kinds", "mean", "scale", "constant", "clip")
            if k not in d
        ]
        if missing:
            raise ValueError(f"FeaturePreprocessor dict lacks {missing}")
        pre = cls(
            feature_names=[str(n) for n in d["feature_names"]],
            kinds=[str(k) for k in d["kinds"]],
            mean=np.asarray(d["mean"], dtype=np.float64),
            scale=np.asarray(d["scale"], dtype=np.float64),
            constant=np.asarray(d["constant"], dtype=bool),
            spec_hash=str(d["spec_hash"]),
            clip=float(d["clip"]),
            n_fit_rows=int(d.get("n_fit_rows", 0)),
        )
        if expected_spec_hash is not None:
            pre.check_spec(expected_spec_hash)
        return pre
