"""One-minute candles of one symbol: the closed history the features read, the candle in progress, and
the pin that raw snapshot rows carry (docs/features.md §1.3, §6.3).

The pin (`last_candle_start_ms`) advances to a candle only once it is closed and no minute between the
oldest held candle and it is missing; a hole waiting for a REST back-fill holds it back, so the candle
window K(t) that live features read is exactly the contiguous run batch jobs will find in the store.
Memory is bounded: only the newest `max_closed` closed candles are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from schemas.features import CANDLE_WINDOW
from schemas.market import CANDLE_INTERVAL_MS, Candle
from schemas.snapshot import NO_CANDLE_PIN


class CandleStore:
    """Closed and in-progress one-minute candles of `symbol`, with the contiguity-guarded pin."""

    def __init__(self, symbol: str, *, max_closed: int = CANDLE_WINDOW + 50) -> None:
        if max_closed < CANDLE_WINDOW:
            raise ValueError(f"max_closed must be at least CANDLE_WINDOW ({CANDLE_WINDOW}), got {max_closed}")
        self.symbol = symbol
        self.max_closed = max_closed
        self._closed: dict[int, Candle] = {}
        self.pin = NO_CANDLE_PIN
        self.open_candle: Candle | None = None
        self._unrecorded: OrderedDict[int, Candle] = OrderedDict()

    # -- inputs --------------------------------------------------------------------------------------

    def load_history(self, candles: Iterable[Candle], request_exchange_ms: int) -> int:
        """Add candles from the REST back-fill, dropping the one still open at the time of the request.

        Returns how many closed candles were added.
        """
        added = 0
        for candle in candles:
            if candle.start_ms + CANDLE_INTERVAL_MS > request_exchange_ms:
                continue  # still open when the exchange answered
            added += self._add_closed(candle)
        self._advance_pin()
        return added

    def on_kline(self, candle: Candle, *, confirm: bool) -> bool:
        """A `kline.1` update; only `confirm` closes a candle (the pin never advances on time alone).

        Returns True when the pin moved.
        """
        self._check_symbol(candle)
        if not confirm:
            if self.open_candle is None or candle.start_ms >= self.open_candle.start_ms:
                self.open_candle = candle
            return False
        if self.open_candle is not None and self.open_candle.start_ms <= candle.start_ms:
            self.open_candle = None
        before = self.pin
        self._add_closed(candle)
        self._advance_pin()
        return self.pin != before

    # -- views ---------------------------------------------------------------------------------------

    def window(self, n: int = CANDLE_WINDOW) -> list[Candle]:
        """K(t) for the current pin: the contiguous closed run ending at the pin, oldest first, at most `n`."""
        out: list[Candle] = []
        start = self.pin
        while start != NO_CANDLE_PIN and len(out) < n and start in self._closed:
            out.append(self._closed[start])
            start -= CANDLE_INTERVAL_MS
        out.reverse()
        return out

    def missing(self) -> list[int]:
        """Starts of the minutes missing between the pin and the newest closed candle (to back-fill)."""
        if not self._closed:
            return []
        newest = max(self._closed)
        start = self.pin if self.pin != NO_CANDLE_PIN else min(self._closed)
        return [t for t in range(start, newest, CANDLE_INTERVAL_MS) if t not in self._closed]

    def drain_unrecorded(self) -> list[Candle]:
        """Closed candles not yet handed to the recorder, oldest first (every held candle is recorded)."""
        out = list(self._unrecorded.values())
        self._unrecorded.clear()
        return sorted(out, key=lambda c: c.start_ms)

    def __len__(self) -> int:
        return len(self._closed)

    # -- internals -----------------------------------------------------------------------------------

    def _add_closed(self, candle: Candle) -> int:
        self._check_symbol(candle)
        if candle.interval_ms != CANDLE_INTERVAL_MS:
            raise ValueError(
                f"{self.symbol}: only one-minute candles are stored, got interval {candle.interval_ms} ms"
            )
        is_new = candle.start_ms not in self._closed
        if not is_new and self._closed[candle.start_ms] == candle:
            return 0
        self._closed[candle.start_ms] = candle  # a re-sent confirm may correct the candle; keep the latest
        self._unrecorded[candle.start_ms] = candle
        if len(self._closed) > self.max_closed:
            for start in sorted(self._closed)[: len(self._closed) - self.max_closed]:
                del self._closed[start]
        return int(is_new)

    def _advance_pin(self) -> None:
        if not self._closed:
            return
        if self.pin == NO_CANDLE_PIN or self.pin not in self._closed:
            # First candles (or the pinned one was evicted): start from the oldest held.
            self.pin = min(self._closed)
        while self.pin + CANDLE_INTERVAL_MS in self._closed:
            self.pin += CANDLE_INTERVAL_MS

    def _check_symbol(self, candle: Candle) -> None:
        if candle.symbol != self.symbol:
            raise ValueError(f"candle of {candle.symbol} given to the {self.symbol} store")
