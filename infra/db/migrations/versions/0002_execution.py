"""Execution (issue 11): the order and position state machines' persistence, idempotency, reconciliation, the account lock.

Reserved in the chain so that parallel work lands without two heads; it changes nothing until that work
fills it, and is removed if that work needs no schema.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
