"""The order-book channel, features #1–50 of docs/features.md §2, as one pure function of a RowWindow.

Live and batch both call :func:`orderbook_features` on windows of at most 61 rows (§1.6: one implementation),
so they agree to the last bit. The per-row quantities it reads (k-level sums, mid, spread, the pair quantities
r_j, e_j, x_j) were computed once per row when the row was stored (``ml.features.rows``); here they are
combined over W_SHORT(t) and W_LONG(t). Statistics are two-pass with ddof 0 over the window arrays, oldest
first; window sums add rows oldest first; the rows of a window never cross a segment start, and row 0 of a
window never contributes a pair quantity (it starts t's segment or is only the predecessor of row 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.features.finite import replace_non_finite
from ml.features.rows import AGG, DER, RowWindow, m_star
from schemas.features import CHANNEL_BOUNDS, FEATURE_PARAMETERS

N_ORDERBOOK = CHANNEL_BOUNDS["orderbook"][1] - CHANNEL_BOUNDS["orderbook"][0]

_D_TWO = DER["two_sided"]
_D_MID = DER["mid"]
_D_SPREAD = DER["spread_rel"]
_D_DB5, _D_DA5, _D_DB10, _D_DA10 = (DER[f"depth_{s}_{k}"] for k in (5, 10) for s in ("bid", "ask"))
_D_LB5, _D_LA5, _D_LB10, _D_LA10 = (DER[f"notional_{s}_{k}"] for k in (5, 10) for s in ("bid", "ask"))
_D_TB, _D_TA = DER["depth_bid_all"], DER["depth_ask_all"]
_D_WB, _D_WA = DER["weighted_bid_all"], DER["weighted_ask_all"]
_D_X5 = DER["net_depth_5"]
_D_PAIR, _D_R, _D_E = DER["pair_two_sided"], DER["r"], DER["e"]
_D_XOK, _D_X = DER["x_ok"], DER["x"]
_D_SIGNED_NOT, _D_TOTAL_NOT = DER["signed_notional"], DER["total_notional"]

_I_SECS = AGG["interval_s"]
_I_BOOK_MSGS = AGG["n_book_msgs"]
_I_BBO = AGG["n_bbo_changes"]
_I_BID_EVENTS = AGG["bid_events"]
_I_ASK_EVENTS = AGG["ask_events"]
_I_TTL_COUNT = AGG["ttl_count"]
_I_TTL_SUM = AGG["ttl_sum_s"]
_I_TTL_SUMSQ = AGG["ttl_sumsq_s2"]
_I_N_BUY = AGG["n_buy_trades"]
_I_N_SELL = AGG["n_sell_trades"]
_I_N_TRADES = AGG["n_trades"]
_I_BUY_VOL = AGG["buy_volume"]
_I_SELL_VOL = AGG["sell_volume"]
_I_TRADED = AGG["traded_volume"]
_I_EFF_WSUM = AGG["eff_spread_wsum"]
_I_EFF_VOL = AGG["eff_spread_volume"]


@dataclass(frozen=True, slots=True)
class OrderBookParams:
    """The §5 parameters the order-book channel reads (tests override some, e.g. ``min_pairs``)."""

    w_short: int = int(FEATURE_PARAMETERS["W_SHORT"])
    w_long: int = int(FEATURE_PARAMETERS["W_LONG"])
    min_pairs: int = int(FEATURE_PARAMETERS["MIN_PAIRS"])
    ratio_cap: float = float(FEATURE_PARAMETERS["RATIO_CAP"])
    cluster_size_mult: float = float(FEATURE_PARAMETERS["CLUSTER_SIZE_MULT"])
    cluster_min_notional: float = float(FEATURE_PARAMETERS["CLUSTER_MIN_NOTIONAL"])

    def __post_init__(self) -> None:
        for name in ("w_short", "w_long", "min_pairs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.upper()} must be >= 1, got {getattr(self, name)}")
        if not self.ratio_cap >= 1:
            raise ValueError(f"RATIO_CAP must be >= 1, got {self.ratio_cap}")
        if not self.cluster_size_mult > 0 or not self.cluster_min_notional >= 0:
            raise ValueError(
                "CLUSTER_SIZE_MULT must be > 0 and CLUSTER_MIN_NOTIONAL >= 0, got "
                f"{self.cluster_size_mult} and {self.cluster_min_notional}"
            )

    @property
    def window_rows(self) -> int:
        """Rows of lookback: the longest window and the predecessor of its oldest row (61)."""
        return max(self.w_short, self.w_long) + 1

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> OrderBookParams:
        """From a §5 parameter mapping such as FEATURE_PARAMETERS or FeatureSpec.parameters."""
        try:
            return cls(
                w_short=int(params["W_SHORT"]),
                w_long=int(params["W_LONG"]),
                min_pairs=int(params["MIN_PAIRS"]),
                ratio_cap=float(params["RATIO_CAP"]),
                cluster_size_mult=float(params["CLUSTER_SIZE_MULT"]),
                cluster_min_notional=float(params["CLUSTER_MIN_NOTIONAL"]),
            )
        except KeyError as exc:
            raise KeyError(f"feature parameters lack {exc.args[0]!r} (docs/features.md §5)") from None


DEFAULT_PARAMS = OrderBookParams()


def resolve_params(params: OrderBookParams | Mapping[str, Any] | None) -> OrderBookParams:
    """The defaults for None, a §5 mapping converted, or the params themselves."""
    if params is None:
        return DEFAULT_PARAMS
    if isinstance(params, OrderBookParams):
        return params
    return OrderBookParams.from_mapping(params)


def orderbook_features(w: RowWindow, params: OrderBookParams | Mapping[str, Any] | None = None) -> np.ndarray:
    """Features #1–50 at row t, the last row of ``w``: a finite (50,) float64 array in vector order."""
    p = resolve_params(params)
    k = len(w)
    if k == 0:
        raise ValueError("orderbook_features: the row window is empty (it must end at row t)")
    if k < p.window_rows and not w.starts_segment:
        raise ValueError(
            f"orderbook_features: a window of {k} rows must either start t's segment or hold "
            f"{p.window_rows} rows (W_LONG + 1)"
        )
    with np.errstate(all="ignore"):  # overflow and 0/0 on masked entries; non-finite results are replaced
        out, ctx = _compute(w, p, k)
    values = np.array(out)
    if not np.isfinite(values).all():
        replace_non_finite(values, _defaults(*ctx), CHANNEL_BOUNDS["orderbook"][0])
    return values


def _div(num: float, den: float, default: float) -> float:
    return num / den if den != 0 else default


def _std(a: np.ndarray) -> float:
    """Population standard deviation, two-pass (mean first, then centred squares)."""
    d = a - a.sum() / a.size
    return math.sqrt(float((d * d).sum()) / a.size)


def _compute(w: RowWindow, p: OrderBookParams, k: int) -> tuple[list[float], tuple[float, ...]]:
    t = k - 1
    nb = int(w.n_bid_levels[t])
    na = int(w.n_ask_levels[t])
    bp, bq, ap, aq = w.bid_prices[t], w.bid_sizes[t], w.ask_prices[t], w.ask_sizes[t]
    der = w.derived
    row = der[t].tolist()
    db5, da5, db10, da10 = row[_D_DB5], row[_D_DA5], row[_D_DB10], row[_D_DA10]
    lb5, la5, lb10, la10 = row[_D_LB5], row[_D_LA5], row[_D_LB10], row[_D_LA10]
    tb, ta, wqb, wqa = row[_D_TB], row[_D_TA], row[_D_WB], row[_D_WA]
    pb, qb, pa, qa = float(bp[0]), float(bq[0]), float(ap[0]), float(aq[0])
    two_sided = nb > 0 and na > 0
    ms = m_star(nb, na, pb, pa, float(w.last_trade_price[t]))

    # 2.1 basic microstructure
    spread_rel = row[_D_SPREAD]
    if two_sided:
        mid = row[_D_MID]
        spread_abs = pa - pb
        micro = _div(pb * qa + pa * qb, qb + qa, ms)
        pressure = _div(1e4 * (micro - mid), mid, 0.0)
    else:
        spread_abs = pressure = 0.0
        micro = ms
    vwap_b5 = _div(lb5, db5, ms) if nb else ms
    vwap_a5 = _div(la5, da5, ms) if na else ms
    vwap_b10 = _div(lb10, db10, ms) if nb else ms
    vwap_a10 = _div(la10, da10, ms) if na else ms
    ratio = min(max(tb / ta, 1 / p.ratio_cap), p.ratio_cap) if tb > 0 and ta > 0 else 1.0

    # Row ranges of the window (window indices): W_SHORT(t) = [lo_s, t], W_LONG(t) = [lo_l, t]. Pair
    # quantities of row j use j − 1; row 0 of the window has none (it starts the segment or only serves as
    # a predecessor), so pairs run over j ≥ 1. Rates leave out the segment's first row (§1.2).
    lo_s = max(k - p.w_short, 0)
    lo_l = max(k - p.w_long, 0)
    rate_lo = lo_s + 1 if lo_s == 0 and w.starts_segment else lo_s
    agg = w.agg
    short = agg[lo_s:].sum(axis=0).tolist()
    long_ = agg[lo_l:].sum(axis=0).tolist()
    rate = agg[rate_lo:].sum(axis=0).tolist() if rate_lo < k else None
    secs = rate[_I_SECS] if rate is not None else 0.0

    def per_second(col: int) -> float:
        return rate[col] / secs if rate is not None and secs > 0 else 0.0

    # 2.2 imbalance and pressure
    s = max(t - p.w_short, 0)  # the row W_SHORT rows before t, or the segment's first row
    volume_delta = row[_D_X5] - float(der[s, _D_X5]) if s < t else 0.0
    j0 = max(lo_s, 1)
    ofi = float(der[j0:, _D_E].sum()) if j0 <= t else 0.0

    buy_sell = _div(short[_I_BUY_VOL], short[_I_TRADED], 0.5)
    smart = 0.0
    if long_[_I_N_BUY] > 0 and long_[_I_N_SELL] > 0:
        sb = long_[_I_BUY_VOL] / long_[_I_N_BUY]
        ss = long_[_I_SELL_VOL] / long_[_I_N_SELL]
        smart = _div(sb - ss, sb + ss, 0.0)

    # 2.3 clusters and levels
    bid_cl = _clusters(bp, bq, nb, p.cluster_size_mult, p.cluster_min_notional)
    ask_cl = _clusters(ap, aq, na, p.cluster_size_mult, p.cluster_min_notional)
    lowest_bid = float(bp[nb - 1]) if nb else ms
    highest_ask = float(ap[na - 1]) if na else ms
    if bid_cl is not None:
        big_bid_price, big_bid_vol, n_bid_cl, support = bid_cl
    else:
        big_bid_price, big_bid_vol, n_bid_cl, support = (pb if nb else ms), 0.0, 0, lowest_bid
    if ask_cl is not None:
        big_ask_price, big_ask_vol, n_ask_cl, resistance = ask_cl
    else:
        big_ask_price, big_ask_vol, n_ask_cl, resistance = (pa if na else ms), 0.0, 0, highest_ask

    # 2.4 liquidity, and the mid-return estimators over W_LONG(t)
    eff_spread = 2e4 * short[_I_EFF_WSUM] / short[_I_EFF_VOL] if short[_I_EFF_VOL] > 0 else spread_rel
    jl = max(lo_l, 1)
    kyle = amihud = ob_vol = roll = 0.0
    if jl <= t:
        pairs = der[jl:]
        ok = pairs[:, _D_PAIR] > 0
        r = pairs[ok, _D_R]
        n_pairs = r.size
        if n_pairs:
            notional = float(pairs[ok, _D_TOTAL_NOT].sum())
            amihud = float(np.abs(r).sum()) / notional if notional > 0 else 0.0
            if n_pairs >= p.min_pairs:
                sig = pairs[ok, _D_SIGNED_NOT]
                ds = sig - sig.sum() / n_pairs
                dr = r - r.sum() / n_pairs
                den = float((ds * ds).sum())
                kyle = float((ds * dr).sum()) / den if den > 0 else 0.0
            if n_pairs >= 2:
                ob_vol = _std(r)
        x_ok = pairs[:, _D_XOK] > 0
        lag_ok = x_ok[1:] & x_ok[:-1]  # (x_j, x_{j-1}) with both rows in W_LONG(t)
        n_lag = int(lag_ok.sum())
        if n_lag >= p.min_pairs:
            x = pairs[:, _D_X]
            xa, xb = x[1:][lag_ok], x[:-1][lag_ok]
            cov = float(((xa - xa.sum() / n_lag) * (xb - xb.sum() / n_lag)).sum()) / n_lag
            roll = 2 * math.sqrt(max(0.0, -cov))
    dir_ratio = _div(wqb, wqb + wqa, 0.5)

    # 2.5 temporal
    ttl_n = long_[_I_TTL_COUNT]
    ttl_avg = ttl_std = 0.0
    if ttl_n > 0:
        ttl_avg = long_[_I_TTL_SUM] / ttl_n
        ttl_std = math.sqrt(max(0.0, long_[_I_TTL_SUMSQ] / ttl_n - ttl_avg * ttl_avg))
    spread_vol = 0.0
    quoted = der[lo_l:, _D_TWO] > 0
    if int(quoted.sum()) >= 2:
        spread_vol = _std(der[lo_l:, _D_SPREAD][quoted])

    out = [
        spread_abs,
        spread_rel,
        ms,
        micro,
        vwap_b5,
        vwap_a5,
        vwap_b10,
        vwap_a10,
        db5,
        da5,
        db10,
        da10,
        tb,
        ta,
        ratio,
        _div(db5, db5 + da5, 0.5),
        _div(db10, db10 + da10, 0.5),
        _div(tb, tb + ta, 0.5),
        pressure,
        volume_delta,
        ofi,
        per_second(_I_BID_EVENTS),
        per_second(_I_ASK_EVENTS),
        buy_sell,
        smart,
        big_bid_price,
        big_bid_vol,
        big_ask_price,
        big_ask_vol,
        float(n_bid_cl),
        float(n_ask_cl),
        support,
        resistance,
        _div(1e4 * (ms - support), ms, 0.0),
        _div(1e4 * (resistance - ms), ms, 0.0),
        lb5,
        la5,
        _div(lb5 - la5, lb5 + la5, 0.0),
        eff_spread,
        kyle,
        amihud,
        roll,
        dir_ratio,
        ttl_avg,
        ttl_std,
        ob_vol,
        per_second(_I_BOOK_MSGS),
        per_second(_I_BBO),
        per_second(_I_N_TRADES),
        spread_vol,
    ]
    return out, (ms, pb if nb else ms, pa if na else ms, lowest_bid, highest_ask, spread_rel)


def _clusters(
    prices: np.ndarray, sizes: np.ndarray, n: int, mult: float, min_notional: float
) -> tuple[float, float, int, float] | None:
    """(price and volume of the largest cluster, number of clusters, price of the nearest one), or None.

    §2.3: a level is big when its size is at least ``mult`` × the side's median size and its notional at
    least ``min_notional``; a cluster is a maximal run of consecutive big levels.
    """
    if n < 3:
        return None
    q = sizes[:n]
    ordered = np.sort(q)
    h = n // 2
    median = float(ordered[h]) if n % 2 else (float(ordered[h - 1]) + float(ordered[h])) / 2
    notional = prices[:n] * q
    big = np.flatnonzero((q >= mult * median) & (notional >= min_notional)).tolist()
    if not big:
        return None
    sizes_l, notional_l = q.tolist(), notional.tolist()
    clusters: list[tuple[float, float]] = []  # (P_c, V_c) from the touch outwards
    start = prev = big[0]
    for i in [*big[1:], -2]:  # -2 closes the last run
        if i != prev + 1:
            volume = sum(sizes_l[start : prev + 1])
            clusters.append((sum(notional_l[start : prev + 1]) / volume, volume))
            start = i
        prev = i
    largest = max(clusters, key=lambda c: c[1])  # the first maximum: ties go to the cluster nearer the touch
    return largest[0], largest[1], len(clusters), clusters[0][0]


_BASE_DEFAULTS = np.zeros(N_ORDERBOOK)
_BASE_DEFAULTS[[14]] = 1.0  # book_depth_ratio
_BASE_DEFAULTS[[15, 16, 17, 23, 42]] = 0.5  # imbalances, buy_sell_ratio, depth_imbalance_ratio


def _defaults(
    ms: float, best_bid: float, best_ask: float, lowest_bid: float, highest_ask: float, spread_rel: float
) -> np.ndarray:
    """The default of each feature at this row (§2 tables), for the non-finite replacement of §1.5."""

    def finite(x: float) -> float:
        return x if math.isfinite(x) else 0.0

    d = _BASE_DEFAULTS.copy()
    ms = finite(ms)
    d[[2, 3, 4, 5, 6, 7]] = ms  # mid_price, micro_price, vwaps
    d[25] = finite(best_bid)  # largest_bid_cluster_price: Pb, or m* with no bid
    d[27] = finite(best_ask)
    d[31] = finite(lowest_bid)  # support_level_1 without a cluster
    d[32] = finite(highest_ask)
    d[38] = finite(spread_rel)  # effective_spread
    return d
