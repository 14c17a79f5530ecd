"""Execution (issue 11): orders keyed by their intent, fills with the venue's closed PnL, reconciliation runs
and the execution state that must survive a restart (the kill switch).

* `orders.intent_id`, `orders.attempt`: the decision an order carries out and which attempt it is; the
  orderLinkId is derived from both (trading_daemon.execution.order_ids), and (intent_id, attempt) is unique,
  so the same intent can never become two orders of the same attempt, even across restarts.
* `orders.sent_at`: when the order was last put on the wire (before the request left), so that the
  ambiguous-outcome rule knows after a restart how long to wait before the exchange's "no such order" counts.
* `fills.closed_pnl`: the venue's gross PnL of a closing fill (`execPnl`), so that the wallet can be checked
  against the fills: wallet = deposits + Σ closed_pnl − Σ fee (funding included).
* `reconciliation_runs`: one row per reconciliation pass, what it found and corrected.
* `execution_state`: per account, small durable facts (the kill switch's halt, with who/why/when).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE_SQL = """
ALTER TABLE orders
    ADD COLUMN intent_id text,
    ADD COLUMN attempt integer CHECK (attempt >= 1),
    ADD COLUMN sent_at timestamptz,
    ADD CONSTRAINT ux_orders_intent_attempt UNIQUE (intent_id, attempt),
    ADD CONSTRAINT orders_intent_has_attempt CHECK ((intent_id IS NULL) = (attempt IS NULL));

ALTER TABLE fills ADD COLUMN closed_pnl numeric;

CREATE TABLE reconciliation_runs (
    id           bigserial PRIMARY KEY,
    account      text NOT NULL,
    trigger      text NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    success      boolean NOT NULL,
    attempts     integer NOT NULL CHECK (attempts >= 1),
    summary      jsonb NOT NULL DEFAULT '{}',
    error        text,
    trace_id     text,
    CHECK (finished_at >= started_at)
);
CREATE INDEX ix_reconciliation_runs_account ON reconciliation_runs (account, id DESC);

CREATE TABLE execution_state (
    account     text NOT NULL,
    key         text NOT NULL,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, key)
);
"""

DOWNGRADE_SQL = """
DROP TABLE execution_state, reconciliation_runs;
ALTER TABLE fills DROP COLUMN closed_pnl;
ALTER TABLE orders
    DROP CONSTRAINT orders_intent_has_attempt,
    DROP CONSTRAINT ux_orders_intent_attempt,
    DROP COLUMN sent_at,
    DROP COLUMN attempt,
    DROP COLUMN intent_id;
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL)


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
