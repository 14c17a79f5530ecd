"""Model gate (issue 15): every decision of the model gate, stored with the version it judged.

* `model_gate_decisions`: one row per gate decision about a model version (`ml.gate`, through
  `ml.registry.ModelRegistry.promote_gated`): promoted or not, the gate metric, the candidate's value with
  its block-bootstrap interval, the production version it was compared with, the reason, and the numbers
  behind it (`details`: each comparison's gain interval, every model of the run, the bootstrap). The
  decision, its audit row (`model_promote`) and the production switch commit in one transaction.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE model_gate_decisions (
            id                   bigserial PRIMARY KEY,
            version              text NOT NULL REFERENCES model_versions (version),
            decided_at           timestamptz NOT NULL,
            promoted             boolean NOT NULL,
            metric               text NOT NULL,
            candidate_value      double precision NOT NULL,
            candidate_low        double precision NOT NULL,
            candidate_high       double precision NOT NULL,
            production_version   text REFERENCES model_versions (version),
            reason               text NOT NULL,
            details              jsonb NOT NULL
        );
        CREATE INDEX ix_model_gate_decisions_version ON model_gate_decisions (version, id DESC);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE model_gate_decisions")
