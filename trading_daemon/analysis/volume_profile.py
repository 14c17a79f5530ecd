"""The volume profile of a run of candles: volume by price, its point of control, value area and nodes.

Each candle's volume is spread evenly over its range [low, high] (a candle without range puts it all in the
bin of its price), over `bins` equal bins between the lowest low and the highest high. From the histogram:

* **POC**, the point of control: the centre of the bin holding the most volume (the lowest such bin on a tie);
* **value area**: grown from the POC's bin one bin at a time, each step taking the neighbour (above or
  below) with more volume (above on a tie), until it holds `value_area` of the volume; VAL and VAH are its
  lower and upper price edges;
* **high-volume nodes** (HVN): bins that are local maxima holding at least `hvn_mult` × the mean bin volume,
  where price tends to stall (support and resistance);
* **low-volume nodes** (LVN): bins holding at most `lvn_mult` × the mean, where price tends to move fast.

No standard library computes this; it is plain numpy (docs/strategies.md §2.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True, eq=False)
class VolumeProfile:
    """Volume by price (see the module docstring); prices in the candles' unit."""

    edges: np.ndarray  # (bins + 1,) ascending
    volume: np.ndarray  # (bins,)
    poc: float
    value_area_low: float
    value_area_high: float
    hvn: tuple[float, ...]  # bin centres, ascending
    lvn: tuple[float, ...]

    @property
    def centres(self) -> np.ndarray:
        centres: np.ndarray = (self.edges[:-1] + self.edges[1:]) / 2
        return centres

    def bin_of(self, price: float) -> int | None:
        """The bin holding `price`, or None outside the profile's range."""
        if not self.edges[0] <= price <= self.edges[-1]:
            return None
        return min(int(np.searchsorted(self.edges, price, side="right")) - 1, len(self.volume) - 1)

    def mean_volume(self, low: float, high: float) -> float:
        """Mean bin volume over the bins whose centres lie in [low, high] (0 if none)."""
        inside = (self.centres >= low) & (self.centres <= high)
        return float(self.volume[inside].mean()) if inside.any() else 0.0


def volume_profile(
    high: np.ndarray,
    low: np.ndarray,
    volume: np.ndarray,
    *,
    bins: int,
    value_area: float,
    hvn_mult: float,
    lvn_mult: float,
) -> VolumeProfile | None:
    """The profile of candles with these highs, lows and volumes; None without range or volume."""
    if bins < 1 or not 0 < value_area <= 1:
        raise ValueError(f"bins must be >= 1 and value_area in (0, 1], got {bins} and {value_area}")
    if len(high) == 0 or len(high) != len(low) or len(high) != len(volume):
        return None
    lo, hi = float(low.min()), float(high.max())
    total = float(volume.sum())
    if not hi > lo or not total > 0:
        return None
    edges = np.linspace(lo, hi, bins + 1)
    # overlap of each candle's range with each bin, as a share of the range
    overlap = np.clip(
        np.minimum(high[:, None], edges[None, 1:]) - np.maximum(low[:, None], edges[None, :-1]), 0.0, None
    )
    ranges = high - low
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(ranges[:, None] > 0, overlap / ranges[:, None], 0.0)
    flat = ranges <= 0
    if flat.any():  # all of a flat candle's volume goes to its price's bin
        idx = np.clip(np.searchsorted(edges, low[flat], side="right") - 1, 0, bins - 1)
        share[np.flatnonzero(flat), idx] = 1.0
    hist = (share * volume[:, None]).sum(axis=0)
    poc_bin = int(np.argmax(hist))
    a = b = poc_bin
    held = float(hist[poc_bin])
    target = value_area * float(hist.sum())
    while held < target and (a > 0 or b < bins - 1):
        below = float(hist[a - 1]) if a > 0 else -1.0
        above = float(hist[b + 1]) if b < bins - 1 else -1.0
        if above >= below:
            b += 1
            held += above
        else:
            a -= 1
            held += below
    centres = (edges[:-1] + edges[1:]) / 2
    mean = float(hist.mean())
    padded = np.concatenate(([-np.inf], hist, [-np.inf]))
    peaks = (hist >= padded[:-2]) & (hist >= padded[2:])
    return VolumeProfile(
        edges=edges,
        volume=hist,
        poc=float(centres[poc_bin]),
        value_area_low=float(edges[a]),
        value_area_high=float(edges[b + 1]),
        hvn=tuple(float(x) for x in centres[peaks & (hist >= hvn_mult * mean)]),
        lvn=tuple(float(x) for x in centres[hist <= lvn_mult * mean]),
    )
