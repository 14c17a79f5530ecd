"""Client order ids (Bybit `orderLinkId`): deterministic from the intent id and the attempt.

`order_link_id(intent_id, attempt)` is `<slug>-<hash>-<attempt>`: up to 10 characters of the intent id
(letters, digits, `_`, so that a human can tell orders apart in the exchange's UI), 20 hex digits of
SHA-256 over the intent id (80 bits: no two intents meet by chance) and the attempt number — at most 35
characters of `[A-Za-z0-9_-]`, Bybit's limit being 36. The same (intent, attempt) always gives the same id,
so an intent submitted twice, or resubmitted after a crash, can only ever be one order per attempt: the
exchange refuses a second order with the same id (110072) and the database has it unique.
"""

from __future__ import annotations

import hashlib
import re

from trading_daemon.exchange.constants import ORDER_LINK_ID_RE

MAX_ATTEMPT = 999
_SLUG_LEN = 10
_HASH_HEX = 20
_NOT_SLUG = re.compile(r"[^A-Za-z0-9_]")
_LINK_ID = re.compile(r"^[A-Za-z0-9_]{0,10}-[0-9a-f]{20}-[1-9][0-9]{0,2}$")


def order_link_id(intent_id: str, attempt: int = 1) -> str:
    """The orderLinkId of attempt `attempt` (1-999) at intent `intent_id`."""
    if not intent_id:
        raise ValueError("order_link_id: intent_id is empty")
    if not 1 <= attempt <= MAX_ATTEMPT:
        raise ValueError(f"order_link_id: attempt must be in 1..{MAX_ATTEMPT}, got {attempt}")
    slug = _NOT_SLUG.sub("", intent_id)[:_SLUG_LEN]
    digest = hashlib.sha256(intent_id.encode()).hexdigest()[:_HASH_HEX]
    link_id = f"{slug}-{digest}-{attempt}"
    assert ORDER_LINK_ID_RE.match(link_id), link_id
    return link_id


def is_ours(link_id: str) -> bool:
    """Whether `link_id` has the shape of an id this module makes (orders placed elsewhere do not)."""
    return bool(_LINK_ID.match(link_id))


def attempt_of(link_id: str) -> int:
    """The attempt number of one of our ids."""
    if not is_ours(link_id):
        raise ValueError(f"{link_id!r} is not an orderLinkId made by trading_daemon.execution")
    return int(link_id.rsplit("-", 1)[1])
