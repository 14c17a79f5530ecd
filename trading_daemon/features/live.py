"""Live features and model input windows per symbol, fed by the market feed.

:class:`LiveFeatures` is one of the feed's sinks (`trading_daemon.market.feed.MarketSink`). Per symbol it
feeds the raw snapshot rows and closed candles the feed produces into an
`ml.features.pipeline.LiveFeatureEngine`, pushes each feature vector into an `ml.windows.WindowBuffer`, and
holds the newest complete window for the ML gate (:meth:`LiveFeatures.window`). The features and the rule
of a valid window are `ml`'s, shared with training, so a live window equals the training window of the
same rows; this module only routes and guards. A row or candle the engine refuses (a pinned candle it
never got, a candle that contradicts one it holds) is logged and counted, and the refused row ends that
symbol's run of windows; it never reaches the feed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import structlog

from ml.features.pipeline import LiveFeatureEngine
from ml.windows import FeatureWindow, WindowBuffer
from schemas.features import FeatureSpec, feature_spec
from schemas.market import Candle, PublicTrade
from schemas.snapshot import RawSnapshotRow
from trading_daemon.observability.metrics import DaemonMetrics

log = structlog.get_logger(__name__)


class LiveFeatures:
    """Feature engines and window buffers of `symbols`; a market sink."""

    def __init__(
        self, symbols: Iterable[str], *, spec: FeatureSpec | None = None, metrics: DaemonMetrics | None = None
    ) -> None:
        self.spec = spec if spec is not None else feature_spec()
        self.metrics = metrics
        self.engines = {s: LiveFeatureEngine(s, self.spec) for s in symbols}
        self.buffers = {s: WindowBuffer(s, self.spec.snapshot_interval_ms) for s in self.engines}
        self.rows_failed = dict.fromkeys(self.engines, 0)

    def window(self, symbol: str) -> FeatureWindow | None:
        """The window ending at `symbol`'s newest row, or None while that row ends no full run of rows."""
        buffer = self.buffers.get(symbol)
        if buffer is None:
            raise KeyError(f"LiveFeatures holds no symbol {symbol!r} (symbols: {sorted(self.buffers)})")
        return buffer.window()

    # -- MarketSink ----------------------------------------------------------------------------------

    def submit_rows(self, rows: Sequence[RawSnapshotRow]) -> None:
        for row in rows:
            engine = self.engines.get(row.symbol)
            if engine is None:
                continue
            buffer = self.buffers[row.symbol]
            try:
                vector = engine.on_row(row)
            except Exception as exc:
                buffer.break_run()  # this row has no vector: no window may span it
                self.rows_failed[row.symbol] += 1
                self._refused(row.symbol, "row", exc, ts=row.ts)
                continue
            buffer.push(vector.ts_ms, vector.values)

    def submit_candles(self, candles: Sequence[Candle]) -> None:
        for candle in candles:
            engine = self.engines.get(candle.symbol)
            if engine is None or not candle.confirmed:
                continue
            try:
                engine.on_candle(candle)
            except Exception as exc:
                self._refused(candle.symbol, "candle", exc, start_ms=candle.start_ms)

    def submit_trades(self, trades: Sequence[PublicTrade]) -> None:
        """Nothing to do: the features read trades through the rows' aggregates."""

    def _refused(self, symbol: str, kind: str, error: Exception, **context: int) -> None:
        log.error("live features refused input", symbol=symbol, kind=kind, error=str(error), **context)
        if self.metrics is not None:
            self.metrics.live_feature_errors.labels(symbol=symbol, kind=kind).inc()
