"""Orchestration (issue 10): what the Dagster assets and sensors keep in Postgres.

* `drift_reports`: one row per drift report the `drift_report` asset wrote (a time partition of one
  symbol against the production model's training reference), with its severity, the figures behind it
  and the paths of its HTML and JSON files. The retraining sensor reads new rows by id (its cursor).
* `retraining_runs`: one row per retraining run that ended: what triggered it (drift, the nightly
  schedule, a person), the candidate it trained, whether the gate promoted it and why, or why it failed.
* `audit_action` gains `pipeline_run_failed`, the audit row the run-failure sensor writes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

AUDIT_ACTION = "pipeline_run_failed"

UPGRADE_SQL = """
CREATE TABLE drift_reports (
    id                   bigserial PRIMARY KEY,
    partition_key        text NOT NULL,
    symbol               text NOT NULL,
    window_start         timestamptz NOT NULL,
    window_end           timestamptz NOT NULL,
    production_version   text REFERENCES model_versions (version),
    severity             text NOT NULL CHECK (severity IN ('none', 'low', 'medium', 'high')),
    feature_drift_score  double precision NOT NULL,
    prediction_psi       double precision,
    accuracy_drop        double precision,
    drivers              jsonb NOT NULL DEFAULT '[]',
    drifted_features     jsonb NOT NULL DEFAULT '[]',
    recommendation       text NOT NULL,
    html_path            text NOT NULL,
    json_path            text NOT NULL,
    n_reference          integer NOT NULL CHECK (n_reference >= 0),
    n_current            integer NOT NULL CHECK (n_current >= 0),
    dagster_run_id       text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (window_end > window_start)
);
CREATE INDEX ix_drift_reports_symbol_window ON drift_reports (symbol, window_start DESC);
CREATE INDEX ix_drift_reports_severity ON drift_reports (id) WHERE severity IN ('medium', 'high');

CREATE TABLE retraining_runs (
    id                         bigserial PRIMARY KEY,
    dagster_run_id             text NOT NULL UNIQUE,
    trigger                    text NOT NULL CHECK (trigger IN ('drift', 'schedule', 'manual')),
    status                     text NOT NULL CHECK (status IN ('promoted', 'kept', 'failed')),
    drift_report_ids           bigint[] NOT NULL DEFAULT '{}',
    candidate_version          text REFERENCES model_versions (version),
    production_version_before  text REFERENCES model_versions (version),
    metric                     text,
    candidate_value            double precision,
    production_value           double precision,
    reason                     text NOT NULL,
    symbols                    text[] NOT NULL DEFAULT '{}',
    window_start               timestamptz,
    window_end                 timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'failed') OR candidate_version IS NOT NULL)
);
CREATE INDEX ix_retraining_runs_created ON retraining_runs (created_at DESC);
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL)
    # PostgreSQL >= 12 allows this inside the migration's transaction (the value is usable after commit).
    op.execute(f"ALTER TYPE audit_action ADD VALUE IF NOT EXISTS '{AUDIT_ACTION}'")


def downgrade() -> None:
    op.execute("DROP TABLE retraining_runs, drift_reports")
    # PostgreSQL cannot drop an enum value: rebuild the type from its current labels without ours (the
    # labels of other revisions stay), refusing while the append-only audit log holds a row that uses it.
    conn = op.get_bind()
    used = conn.execute(
        text("SELECT count(*) FROM audit_log WHERE action::text = :label"), {"label": AUDIT_ACTION}
    ).scalar_one()
    if used:
        raise RuntimeError(
            f"cannot downgrade 0004: audit_log holds {used} '{AUDIT_ACTION}' rows, and the audit log is "
            "append-only; restore from a backup taken before the upgrade instead"
        )
    labels = [
        row[0]
        for row in conn.execute(
            text(
                "SELECT enumlabel FROM pg_enum WHERE enumtypid = 'audit_action'::regtype "
                "AND enumlabel <> :label ORDER BY enumsortorder"
            ),
            {"label": AUDIT_ACTION},
        )
    ]
    quoted = ", ".join("'" + label.replace("'", "''") + "'" for label in labels)
    op.execute("ALTER TYPE audit_action RENAME TO audit_action_0004")
    op.execute(f"CREATE TYPE audit_action AS ENUM ({quoted})")
    op.execute("ALTER TABLE audit_log ALTER COLUMN action TYPE audit_action USING action::text::audit_action")
    op.execute("DROP TYPE audit_action_0004")
