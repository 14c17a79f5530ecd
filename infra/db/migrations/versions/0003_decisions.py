"""Decisions (issue 12): strategy statistics, detections, support/resistance levels, the ML gate's predictions.

Reserved in the chain so that parallel work lands without two heads; it changes nothing until that work
fills it, and is removed if that work needs no schema.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
