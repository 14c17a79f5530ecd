"""Orchestration (issue 10): what the Dagster assets and sensors keep in Postgres (drift reports, retraining runs).

Reserved in the chain so that parallel work lands without two heads; it changes nothing until that work
fills it, and is removed if that work needs no schema.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
