"""A naive, independent implementation of the feature vector: the benchmark baseline and a cross-check.

It recomputes everything for one row from a pandas DataFrame of all the rows, as a straightforward
implementation would: find the segment by scanning ``book_reset`` backwards, slice the window with
``iloc``, loop over levels and rows in Python, use pandas for sums and statistics, and cut the candle
window from a candle DataFrame on every row. It shares no code with ``ml.features.orderbook`` or
``ml.features.rows``, so the two check each other (docs/features.md §1.6: within 1e-9, 1e-6 for #40 and #41).
The candle and indicator channels reuse ``candle_features`` and ``indicator_features``: only their window
is rebuilt here, per row.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ml.features.candle_window import CandleWindow, MissingCandleError
from ml.features.candles import candle_features
from ml.features.indicators import indicator_features
from schemas.arrow import raw_rows_to_table
from schemas.features import FEATURE_NAMES, FEATURE_PARAMETERS
from schemas.snapshot import RawSnapshotRow


def rows_frame(rows: Sequence[RawSnapshotRow] | pa.Table) -> pd.DataFrame:
    """One DataFrame row per snapshot row; the level arrays stay lists in object columns."""
    table = rows if isinstance(rows, pa.Table) else raw_rows_to_table(rows)
    return table.to_pandas().reset_index(drop=True)


def _segment_start(df: pd.DataFrame, i: int) -> int:
    j = i
    while j > 0 and not bool(df["book_reset"].iloc[j]):
        j -= 1
    return j


def _levels(row: pd.Series, side: str) -> list[tuple[float, float]]:
    n = int(row[f"n_{side}_levels"])
    return list(zip(list(row[f"{side}_prices"])[:n], list(row[f"{side}_sizes"])[:n], strict=True))


def _mid(row: pd.Series) -> float | None:
    bids, asks = _levels(row, "bid"), _levels(row, "ask")
    return (bids[0][0] + asks[0][0]) / 2 if bids and asks else None


def _clusters(
    levels: list[tuple[float, float]], mult: float, min_notional: float
) -> list[tuple[float, float]]:
    """[(price, volume)] of the side's clusters, from the touch outwards."""
    if len(levels) < 3:
        return []
    median = statistics.median(q for _, q in levels)
    clusters: list[tuple[float, float]] = []
    run: list[tuple[float, float]] = []
    for p, q in [*levels, (0.0, 0.0)]:
        if q > 0 and q >= mult * median and p * q >= min_notional:
            run.append((p, q))
        elif run:
            volume = sum(q for _, q in run)
            clusters.append((sum(p * q for p, q in run) / volume, volume))
            run = []
    return clusters


def reference_orderbook_features(
    df: pd.DataFrame, i: int, params: Mapping[str, Any] = FEATURE_PARAMETERS
) -> np.ndarray:
    """Features #1–50 at row ``i`` of ``df`` (rows of one symbol in ts order; row 0 starts a segment)."""
    w_short, w_long, min_pairs = int(params["W_SHORT"]), int(params["W_LONG"]), int(params["MIN_PAIRS"])
    mult, min_notional = float(params["CLUSTER_SIZE_MULT"]), float(params["CLUSTER_MIN_NOTIONAL"])
    cap = float(params["RATIO_CAP"])
    seg = _segment_start(df, i)
    row = df.iloc[i]
    bids, asks = _levels(row, "bid"), _levels(row, "ask")
    ltp = float(row["last_trade_price"])
    mid = _mid(row)
    if mid is not None:
        ms = mid
    elif bids:
        ms = bids[0][0]
    elif asks:
        ms = asks[0][0]
    else:
        ms = ltp if ltp > 0 else 0.0

    def depth(levels: list[tuple[float, float]], k: int) -> float:
        return float(sum(q for _, q in levels[:k]))

    def notional(levels: list[tuple[float, float]], k: int) -> float:
        return float(sum(p * q for p, q in levels[:k]))

    f: dict[str, float] = {}
    if mid is not None:
        (pb, qb), (pa_, qa) = bids[0], asks[0]
        f["bid_ask_spread_abs"] = pa_ - pb
        f["bid_ask_spread_rel"] = 1e4 * (pa_ - pb) / mid
        f["micro_price"] = (pb * qa + pa_ * qb) / (qb + qa)
        f["price_pressure"] = 1e4 * (f["micro_price"] - mid) / mid
    else:
        f["bid_ask_spread_abs"] = f["bid_ask_spread_rel"] = f["price_pressure"] = 0.0
        f["micro_price"] = ms
    f["mid_price"] = ms
    for k in (5, 10):
        f[f"vwap_bid_{k}"] = notional(bids, k) / depth(bids, k) if bids else ms
        f[f"vwap_ask_{k}"] = notional(asks, k) / depth(asks, k) if asks else ms
        f[f"depth_bid_{k}"], f[f"depth_ask_{k}"] = depth(bids, k), depth(asks, k)
        total = depth(bids, k) + depth(asks, k)
        f[f"imbalance_{k}"] = depth(bids, k) / total if total > 0 else 0.5
    tb, ta = depth(bids, 50), depth(asks, 50)
    f["total_bid_volume"], f["total_ask_volume"] = tb, ta
    f["book_depth_ratio"] = min(max(tb / ta, 1 / cap), cap) if tb > 0 and ta > 0 else 1.0
    f["imbalance_total"] = tb / (tb + ta) if tb + ta > 0 else 0.5

    # The window rows as a DataFrame with per-row columns; pair quantities via shift(1) (NaN = undefined).
    win = df.iloc[max(seg, i - max(w_short, w_long)) : i + 1].copy()
    for col, side, what in (
        ("pb", "bid", "prices"),
        ("qb", "bid", "sizes"),
        ("pa", "ask", "prices"),
        ("qa", "ask", "sizes"),
    ):
        win[col] = win[f"{side}_{what}"].map(lambda a: float(a[0]))
    two = (win["n_bid_levels"] > 0) & (win["n_ask_levels"] > 0)
    has_pred = win.index > seg
    win["mid"] = ((win["pb"] + win["pa"]) / 2).where(two)
    win["r"] = (1e4 * np.log(win["mid"] / win["mid"].shift(1))).where(has_pred)
    trade = win["last_trade_price"].where(win["last_trade_price"] > 0)
    win["x"] = (1e4 * np.log(trade / trade.shift(1))).where(has_pred)
    prev = win.shift(1)
    pair_two = two & two.shift(1, fill_value=False) & has_pred
    e = (
        (win["pb"] >= prev["pb"]) * win["qb"]
        - (win["pb"] <= prev["pb"]) * prev["qb"]
        - (win["pa"] <= prev["pa"]) * win["qa"]
        + (win["pa"] >= prev["pa"]) * prev["qa"]
    )
    win["e"] = e.where(pair_two, 0.0)
    win["x5"] = win["bid_sizes"].map(lambda a: float(sum(a[:5]))) - win["ask_sizes"].map(
        lambda a: float(sum(a[:5]))
    )
    short = win[win.index >= max(seg, i - w_short + 1)]
    long_ = win[win.index >= max(seg, i - w_long + 1)]
    rated = short[short.index != seg]

    s = max(seg, i - w_short)
    f["volume_delta_5"] = float(win["x5"].loc[i] - win["x5"].loc[s]) if s < i else 0.0
    f["order_flow_imbalance"] = float(short["e"].sum())
    secs = float((rated["interval_ms"] / 1000).sum())

    def rate(total: float) -> float:
        return total / secs if secs > 0 else 0.0

    f["bid_intensity"] = rate(float(rated[["bid_inserts", "bid_updates", "bid_deletes"]].to_numpy().sum()))
    f["ask_intensity"] = rate(float(rated[["ask_inserts", "ask_updates", "ask_deletes"]].to_numpy().sum()))
    traded = float((short["buy_volume"] + short["sell_volume"]).sum())
    f["buy_sell_ratio"] = float(short["buy_volume"].sum()) / traded if traded > 0 else 0.5
    n_buy, n_sell = float(long_["n_buy_trades"].sum()), float(long_["n_sell_trades"].sum())
    f["smart_money_index"] = 0.0
    if n_buy > 0 and n_sell > 0:
        sb, ss = float(long_["buy_volume"].sum()) / n_buy, float(long_["sell_volume"].sum()) / n_sell
        f["smart_money_index"] = (sb - ss) / (sb + ss) if sb + ss > 0 else 0.0

    for side, levels in (("bid", bids), ("ask", asks)):
        clusters = _clusters(levels, mult, min_notional)
        largest = max(clusters, key=lambda c: c[1]) if clusters else None  # max keeps the first of ties
        level = "support_level_1" if side == "bid" else "resistance_level_1"
        if largest is not None:
            f[f"largest_{side}_cluster_price"], f[f"largest_{side}_cluster_volume"] = largest
            f[level] = clusters[0][0]
        else:
            f[f"largest_{side}_cluster_price"] = levels[0][0] if levels else ms
            f[f"largest_{side}_cluster_volume"] = 0.0
            f[level] = levels[-1][0] if levels else ms  # the farthest visible level
        f[f"num_{side}_clusters"] = float(len(clusters))
    f["distance_to_support"] = 1e4 * (ms - f["support_level_1"]) / ms if ms else 0.0
    f["distance_to_resistance"] = 1e4 * (f["resistance_level_1"] - ms) / ms if ms else 0.0

    lb, la = notional(bids, 5), notional(asks, 5)
    f["liquidity_bid_5"], f["liquidity_ask_5"] = lb, la
    f["liquidity_asymmetry"] = (lb - la) / (lb + la) if lb + la > 0 else 0.0
    eff_volume = float(short["eff_spread_volume"].sum())
    f["effective_spread"] = (
        1e4 * 2 * float(short["eff_spread_wsum"].sum()) / eff_volume
        if eff_volume > 0
        else f["bid_ask_spread_rel"]
    )
    paired = long_[long_["r"].notna()]
    r = paired["r"]
    sig = (paired["buy_notional"] - paired["sell_notional"]) / 1e6
    f["kyle_lambda"] = 0.0
    if len(r) >= min_pairs and len(r) >= 2 and float(sig.var(ddof=0)) > 0:
        f["kyle_lambda"] = float(sig.cov(r, ddof=0)) / float(sig.var(ddof=0))
    notional_sum = float(((paired["buy_notional"] + paired["sell_notional"]) / 1e6).sum())
    f["amihud_illiquidity"] = float(r.abs().sum()) / notional_sum if notional_sum > 0 else 0.0
    f["orderbook_volatility"] = float(r.std(ddof=0)) if len(r) >= 2 else 0.0
    x, lagged = long_["x"], long_["x"].shift(1)
    lag_ok = x.notna() & lagged.notna()
    f["roll_spread"] = 0.0
    if int(lag_ok.sum()) >= min_pairs:
        cov = float(x[lag_ok].cov(lagged[lag_ok], ddof=0))
        f["roll_spread"] = 2 * math.sqrt(max(0.0, -cov))
    wb = sum(q / (n + 1) for n, (_, q) in enumerate(bids))
    wa = sum(q / (n + 1) for n, (_, q) in enumerate(asks))
    f["depth_imbalance_ratio"] = wb / (wb + wa) if wb + wa > 0 else 0.5

    ttl_n = float(long_["ttl_count"].sum())
    f["level_ttl_avg"] = f["level_ttl_std"] = 0.0
    if ttl_n > 0:
        avg = float(long_["ttl_sum_s"].sum()) / ttl_n
        f["level_ttl_avg"] = avg
        f["level_ttl_std"] = math.sqrt(max(0.0, float(long_["ttl_sumsq_s2"].sum()) / ttl_n - avg**2))
    f["update_frequency"] = rate(float(rated["n_book_msgs"].sum()))
    f["quote_intensity"] = rate(float(rated["n_bbo_changes"].sum()))
    f["trade_arrival_rate"] = rate(float((rated["n_buy_trades"] + rated["n_sell_trades"]).sum()))
    quoted = long_[long_["mid"].notna()]
    spreads = 1e4 * (quoted["pa"] - quoted["pb"]) / quoted["mid"]
    f["spread_volatility"] = float(spreads.std(ddof=0)) if len(spreads) >= 2 else 0.0

    return np.array([f[name] for name in FEATURE_NAMES[:50]])


def reference_candle_window(candles: pd.DataFrame, pin_ms: int, window: int = 200) -> CandleWindow:
    """K(t) cut from a candle DataFrame (columns of schemas.arrow.CANDLES) by filtering, per call."""
    if pin_ms == -1:
        return CandleWindow.EMPTY
    held = candles[candles["start_ms"] <= pin_ms].sort_values("start_ms")
    if held.empty or int(held["start_ms"].iloc[-1]) != pin_ms:
        raise MissingCandleError(str(candles["symbol"].iloc[0]) if len(candles) else "?", pin_ms)
    starts = held["start_ms"].tolist()
    first = len(starts) - 1
    while first > 0 and starts[first - 1] == starts[first] - 60_000 and len(starts) - first < window:
        first -= 1
    run = held.iloc[first:]
    return CandleWindow(
        start_ms=run["start_ms"].to_numpy(np.int64),
        **{
            name: run[name].to_numpy(np.float64)
            for name in ("open", "high", "low", "close", "volume", "turnover")
        },
    )


def reference_features(
    df: pd.DataFrame, candles: pd.DataFrame, i: int, params: Mapping[str, Any] = FEATURE_PARAMETERS
) -> np.ndarray:
    """All 110 features at row ``i``, recomputed from scratch (the pandas-per-row baseline)."""
    orderbook = reference_orderbook_features(df, i, params)
    k = reference_candle_window(candles, int(df["last_candle_start_ms"].iloc[i]))
    m_star = float(orderbook[2])
    return np.concatenate((orderbook, candle_features(k, m_star), indicator_features(k, m_star)))
