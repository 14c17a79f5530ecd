"""What every group of typed REST endpoints shares: decoding results, parsing rows, following pages.

`BybitRestBase` holds the transport; `rest_account.BybitAccountEndpoints` and `rest.BybitRestClient` build
on it. Failures are `trading_daemon.errors` types (`exchange.errors`): a result of the wrong shape, a row
that cannot be read or a cursor that never ends is a `BybitProtocolError`, never a short or empty list.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import msgspec

from trading_daemon.exchange.constants import BybitEndpoint
from trading_daemon.exchange.errors import BybitProtocolError
from trading_daemon.exchange.http import BybitHttpClient, Params

S = TypeVar("S", bound=msgspec.Struct)
R = TypeVar("R")
T = TypeVar("T")
MAX_PAGES = 1000  # a cursor that has not ended after this many pages is a venue fault, not data
QUERY_WINDOW_MS = 7 * 86_400_000  # execution and order history: at most 7 days per request (§4.6, §4.9)

_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def decode_result(raw: msgspec.Raw, kind: type[S]) -> S:
    """The `result` of a good envelope as `kind`; another shape raises `BybitProtocolError` (fatal)."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        result: S = decoder.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError included
        # A good envelope (retCode 0) whose result is not what the protocol documents: the venue's own
        # answer, not a bad moment, so retrying cannot help (fatal, like a 10017).
        raise BybitProtocolError(
            f"the result does not have the shape of {kind.__name__}: {exc}", ret_code=0, venue_answered=True
        ) from exc
    return result


@contextlib.contextmanager
def readable(endpoint: BybitEndpoint) -> Iterator[None]:
    """Turn a parse failure (a row that cannot be read) into the venue's malformed answer: fatal, never
    skipped, since a skipped order, fill or position would be read as absent."""
    try:
        yield
    except (ValueError, ArithmeticError) as exc:
        raise BybitProtocolError(
            f"a row of the reply could not be read: {exc}",
            ret_code=0,
            endpoint=endpoint.path,
            venue_answered=True,
        ) from exc


def parse_rows(parse: Callable[[T], R], rows: Iterable[T], endpoint: BybitEndpoint) -> list[R]:
    """Parse every row of a reply of `endpoint` (see `readable`)."""
    with readable(endpoint):
        return [parse(row) for row in rows]


def query_windows(start_ms: int | None, end_ms: int) -> Iterator[tuple[int | None, int]]:
    """Consecutive windows of at most `QUERY_WINDOW_MS` covering `[start_ms, end_ms]` (one if no start)."""
    if start_ms is None:
        yield None, end_ms
        return
    while start_ms <= end_ms:
        stop = min(start_ms + QUERY_WINDOW_MS - 1, end_ms)
        yield start_ms, stop
        start_ms = stop + 1


class BybitRestBase:
    """The transport and the paging every endpoint group uses."""

    def __init__(self, http: BybitHttpClient) -> None:
        self.http = http

    async def close(self) -> None:
        """Close the transport."""
        await self.http.close()

    async def _get(self, endpoint: BybitEndpoint, params: Params, kind: type[S]) -> S:
        return decode_result((await self.http.request(endpoint, params)).result, kind)

    async def _pages(
        self, endpoint: BybitEndpoint, params: dict[str, object], kind: type[S], max_items: int | None
    ) -> list[Any]:
        """Follow `nextPageCursor` (passed back verbatim, §1.6) and concatenate `list`."""
        items: list[Any] = []
        for _ in range(MAX_PAGES):
            page = await self._get(endpoint, params, kind)
            items.extend(page.list)  # type: ignore[attr-defined]
            cursor: str = getattr(page, "nextPageCursor", "")
            if not cursor or (max_items is not None and len(items) >= max_items):
                break
            params = {**params, "cursor": cursor}
        else:
            raise BybitProtocolError(
                f"the cursor did not end after {MAX_PAGES} pages ({len(items)} items)",
                ret_code=0,
                endpoint=endpoint.path,
                venue_answered=True,
            )
        return items if max_items is None else items[:max_items]
