"""Who is calling: the roles of the API and the authenticated caller a route receives."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """`viewer` reads; `trader` also starts and stops the bot, closes orders and positions, engages the
    kill switch; `admin` also reads the configuration, reloads the model, triggers recovery, resets breakers
    and limiters, enables strategies and manages users."""

    VIEWER = "viewer"
    TRADER = "trader"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANK = {Role.VIEWER: 0, Role.TRADER: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request, from a verified access token."""

    user_id: int
    username: str
    role: Role
