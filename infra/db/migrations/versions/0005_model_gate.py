"""Model gate (issue 15): the evaluation and the promotion decision stored with each model version.

Reserved in the chain so that parallel work lands without two heads; it changes nothing until that work
fills it, and is removed if that work needs no schema.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
