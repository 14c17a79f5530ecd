"""API users (issue 13): the roles of the status and control API and the revocation of their tokens.

* `users.role` gains `trader` (between `viewer` and `admin`); its default becomes `viewer`, the least a
  forgotten column can grant.
* `users.token_version`: carried by every token the API issues; changing the password bumps it, so every
  token issued before (access and refresh) is refused from then on.
* `users.password_changed_at`: when the password last changed (null: never since the user was created).
* `audit_action` gains `user_change`: a user created, deactivated, or its password or role changed.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

AUDIT_ACTION = "user_change"

UPGRADE_SQL = """
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users
    ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'trader', 'viewer')),
    ALTER COLUMN role SET DEFAULT 'viewer',
    ADD COLUMN token_version integer NOT NULL DEFAULT 0 CHECK (token_version >= 0),
    ADD COLUMN password_changed_at timestamptz;
"""

DOWNGRADE_SQL = """
ALTER TABLE users
    DROP COLUMN password_changed_at,
    DROP COLUMN token_version,
    DROP CONSTRAINT users_role_check,
    ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'viewer')),
    ALTER COLUMN role SET DEFAULT 'admin';
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL)
    # PostgreSQL >= 12 allows this inside the migration's transaction (the value is usable after commit).
    op.execute(f"ALTER TYPE audit_action ADD VALUE IF NOT EXISTS '{AUDIT_ACTION}'")


def downgrade() -> None:
    conn = op.get_bind()
    # A trader has no place in the old schema, and turning one into a viewer or an admin is a decision about
    # access that a migration must not take on its own.
    traders = conn.execute(text("SELECT count(*) FROM users WHERE role = 'trader'")).scalar_one()
    if traders:
        raise RuntimeError(
            f"cannot downgrade 0006: {traders} users have the role 'trader', which 0005 does not know; "
            "give them the role 'viewer' or 'admin' first"
        )
    # As 0004: PostgreSQL cannot drop an enum value, so the type is rebuilt from its current labels without
    # ours, refusing while the append-only audit log holds a row that uses it.
    used = conn.execute(
        text("SELECT count(*) FROM audit_log WHERE action::text = :label"), {"label": AUDIT_ACTION}
    ).scalar_one()
    if used:
        raise RuntimeError(
            f"cannot downgrade 0006: audit_log holds {used} '{AUDIT_ACTION}' rows, and the audit log is "
            "append-only; restore from a backup taken before the upgrade instead"
        )
    op.execute(DOWNGRADE_SQL)
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
    op.execute("ALTER TYPE audit_action RENAME TO audit_action_0006")
    op.execute(f"CREATE TYPE audit_action AS ENUM ({quoted})")
    op.execute("ALTER TABLE audit_log ALTER COLUMN action TYPE audit_action USING action::text::audit_action")
    op.execute("DROP TYPE audit_action_0006")
