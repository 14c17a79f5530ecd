"""Initial schema: trading tables, the append-only audit log, market data, model versions.

Market-data tables (market_snapshots, public_trades, candles) become TimescaleDB hypertables with
compression and a retention policy when the extension can be created; otherwise they stay plain
tables with a BRIN index on time, and `depthcharge db retention` enforces the same retention. Both
paths live in this one migration so that they stay in step. Which one is taken, and why, is recorded in
storage_settings (`timescaledb`, `timescaledb_version` or `timescaledb_reason`); whether the server can
serve TimescaleDB is asked of infra.db.timescale (its checks are not schema, so they are not frozen here).

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import json

import structlog
from alembic import context, op
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from infra.db import timescale
from infra.settings import load_settings

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

log = structlog.get_logger("infra.db.migrations")

ENUMS = {
    "order_side": ("Buy", "Sell"),
    "order_type": ("Market", "Limit"),
    "time_in_force": ("GTC", "IOC", "FOK", "PostOnly"),
    "order_status": ("Pending", "Placed", "Partially_Filled", "Filled", "Cancelled", "Rejected", "Failed"),
    "position_status": ("Opening", "Open", "Closing", "Closed"),
    "exec_type": ("Trade", "Funding", "AdlTrade", "BustTrade"),
    "signal_action": ("Buy", "Sell", "Hold"),
    "model_status": ("candidate", "production", "archived", "rejected"),
    "audit_action": (
        "order_create",
        "order_status",
        "order_cancel",
        "order_amend",
        "fill",
        "position_open",
        "position_update",
        "position_close",
        "risk_reject",
        "reconciliation",
        "model_promote",
        "model_load",
        "config_change",
        "bot_start",
        "bot_stop",
        "login",
        "emergency_stop",
    ),
}

TRADING_SQL = """
CREATE TABLE storage_settings (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id             bigserial PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 64),
    password_hash  text NOT NULL,
    role           text NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'viewer')),
    is_active      boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz
);

CREATE TABLE positions (
    id              bigserial PRIMARY KEY,
    symbol          text NOT NULL,
    side            order_side NOT NULL,
    status          position_status NOT NULL DEFAULT 'Opening',
    quantity        numeric NOT NULL CHECK (quantity >= 0),
    entry_price     numeric NOT NULL CHECK (entry_price >= 0),
    exit_price      numeric CHECK (exit_price > 0),
    leverage        numeric NOT NULL DEFAULT 1 CHECK (leverage > 0),
    unrealized_pnl  numeric NOT NULL DEFAULT 0,
    realized_pnl    numeric NOT NULL DEFAULT 0,
    fees_paid       numeric NOT NULL DEFAULT 0,
    stop_loss       numeric CHECK (stop_loss > 0),
    take_profit     numeric CHECK (take_profit > 0),
    entry_reason    text,
    exit_reason     text,
    signal_data     jsonb,
    trace_id        text,
    opened_at       timestamptz,
    closed_at       timestamptz,
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'Closed' OR closed_at IS NOT NULL)
);
-- One-way mode: at most one live position per symbol.
CREATE UNIQUE INDEX ux_positions_one_live_per_symbol ON positions (symbol) WHERE status <> 'Closed';
CREATE INDEX ix_positions_symbol_status ON positions (symbol, status);
CREATE INDEX ix_positions_closed_at ON positions (closed_at DESC) WHERE status = 'Closed';
CREATE INDEX ix_positions_trace_id ON positions (trace_id) WHERE trace_id IS NOT NULL;

CREATE TABLE position_events (
    id           bigserial PRIMARY KEY,
    position_id  bigint NOT NULL REFERENCES positions (id),
    from_status  position_status,
    to_status    position_status NOT NULL,
    reason       text,
    trace_id     text,
    details      jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_position_events_position ON position_events (position_id, id);
CREATE INDEX ix_position_events_trace_id ON position_events (trace_id) WHERE trace_id IS NOT NULL;

CREATE TABLE orders (
    id                 bigserial PRIMARY KEY,
    client_order_id    text NOT NULL UNIQUE CHECK (length(client_order_id) BETWEEN 1 AND 36),
    exchange_order_id  text UNIQUE,
    symbol             text NOT NULL,
    side               order_side NOT NULL,
    order_type         order_type NOT NULL,
    time_in_force      time_in_force NOT NULL DEFAULT 'GTC',
    quantity           numeric NOT NULL CHECK (quantity > 0),
    price              numeric CHECK (price > 0),
    filled_quantity    numeric NOT NULL DEFAULT 0 CHECK (filled_quantity >= 0 AND filled_quantity <= quantity),
    avg_fill_price     numeric CHECK (avg_fill_price > 0),
    reduce_only        boolean NOT NULL DEFAULT false,
    status             order_status NOT NULL DEFAULT 'Pending',
    stop_loss          numeric CHECK (stop_loss > 0),
    take_profit        numeric CHECK (take_profit > 0),
    position_id        bigint REFERENCES positions (id),
    reason             text,
    error_message      text,
    signal_data        jsonb,
    trace_id           text,
    version            integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (order_type = 'Market' OR price IS NOT NULL)
);
CREATE INDEX ix_orders_symbol_status ON orders (symbol, status);
-- Recovery lists the orders that may still be live on the exchange.
CREATE INDEX ix_orders_live ON orders (updated_at) WHERE status IN ('Pending', 'Placed', 'Partially_Filled');
CREATE INDEX ix_orders_created_at ON orders (created_at DESC);
CREATE INDEX ix_orders_position ON orders (position_id) WHERE position_id IS NOT NULL;
CREATE INDEX ix_orders_trace_id ON orders (trace_id) WHERE trace_id IS NOT NULL;

CREATE TABLE order_events (
    id           bigserial PRIMARY KEY,
    order_id     bigint NOT NULL REFERENCES orders (id),
    from_status  order_status,
    to_status    order_status NOT NULL,
    reason       text,
    trace_id     text,
    details      jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_order_events_order ON order_events (order_id, id);
CREATE INDEX ix_order_events_trace_id ON order_events (trace_id) WHERE trace_id IS NOT NULL;

CREATE TABLE fills (
    id                 bigserial PRIMARY KEY,
    exec_id            text NOT NULL UNIQUE,
    order_id           bigint REFERENCES orders (id),
    client_order_id    text,
    exchange_order_id  text,
    symbol             text NOT NULL,
    side               order_side NOT NULL,
    exec_type          exec_type NOT NULL DEFAULT 'Trade',
    price              numeric NOT NULL CHECK (price > 0),
    quantity           numeric NOT NULL CHECK (quantity >= 0),
    fee                numeric NOT NULL DEFAULT 0,
    fee_currency       text NOT NULL DEFAULT 'USDT',
    is_maker           boolean NOT NULL DEFAULT false,
    executed_at        timestamptz NOT NULL,
    trace_id           text,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_fills_order ON fills (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX ix_fills_symbol_time ON fills (symbol, executed_at DESC);
CREATE INDEX ix_fills_trace_id ON fills (trace_id) WHERE trace_id IS NOT NULL;

CREATE TABLE signals (
    id             bigserial PRIMARY KEY,
    symbol         text NOT NULL,
    ts             timestamptz NOT NULL,
    source         text NOT NULL,
    action         signal_action NOT NULL,
    strength       double precision NOT NULL CHECK (strength BETWEEN 0 AND 1),
    confidence     double precision CHECK (confidence BETWEEN 0 AND 1),
    price          numeric CHECK (price > 0),
    model_version  text,
    reason         text,
    context        jsonb,
    trace_id       text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_signals_symbol_ts ON signals (symbol, ts DESC);
CREATE INDEX ix_signals_trace_id ON signals (trace_id) WHERE trace_id IS NOT NULL;

CREATE TABLE idempotency_keys (
    key           text PRIMARY KEY,
    operation     text NOT NULL,
    request_hash  text,
    status        text NOT NULL DEFAULT 'completed' CHECK (status IN ('in_progress', 'completed', 'failed')),
    result        jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);
CREATE INDEX ix_idempotency_keys_expires_at ON idempotency_keys (expires_at);

CREATE TABLE model_versions (
    version              text PRIMARY KEY,
    model_type           text NOT NULL,
    status               model_status NOT NULL DEFAULT 'candidate',
    feature_spec_hash    char(64) NOT NULL,
    definitions_version  integer NOT NULL,
    artifact_path        text NOT NULL,
    artifact_sha256      char(64) NOT NULL,
    metrics              jsonb NOT NULL DEFAULT '{}',
    manifest             jsonb NOT NULL,
    data_start           timestamptz,
    data_end             timestamptz,
    parent_version       text REFERENCES model_versions (version),
    created_at           timestamptz NOT NULL,
    promoted_at          timestamptz
);
-- Exactly one production model at a time; promotion flips two rows in one transaction.
CREATE UNIQUE INDEX ux_model_versions_one_production ON model_versions ((true)) WHERE status = 'production';
CREATE INDEX ix_model_versions_status_created ON model_versions (status, created_at DESC);

-- The audit trail is append-only and hash-chained: row_hash = sha256(prev_hash || canonical row),
-- computed by infra.db.audit_chain when the row is appended and checked by `depthcharge audit verify`.
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    ts              timestamptz NOT NULL,
    actor           text NOT NULL,
    action          audit_action NOT NULL,
    entity_type     text NOT NULL,
    entity_id       text NOT NULL,
    old_value       jsonb,
    new_value       jsonb,
    reason          text,
    success         boolean NOT NULL,
    error_message   text,
    context         jsonb,
    trace_id        text,
    correlation_id  text,
    prev_hash       char(64) NOT NULL,
    row_hash        char(64) NOT NULL UNIQUE
);
CREATE INDEX ix_audit_log_entity ON audit_log (entity_type, entity_id, id);
CREATE INDEX ix_audit_log_trace_id ON audit_log (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX ix_audit_log_ts ON audit_log (ts DESC);
CREATE INDEX ix_audit_log_failures ON audit_log (ts DESC) WHERE NOT success;

CREATE FUNCTION audit_log_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_reject_change();
"""

MARKET_DATA_SQL = """
CREATE TABLE market_snapshots (
    symbol                text NOT NULL,
    ts                    timestamptz NOT NULL,
    interval_ms           integer NOT NULL CHECK (interval_ms >= 0),
    book_reset            boolean NOT NULL,
    n_bid_levels          smallint NOT NULL CHECK (n_bid_levels BETWEEN 0 AND 50),
    n_ask_levels          smallint NOT NULL CHECK (n_ask_levels BETWEEN 0 AND 50),
    bid_prices            double precision[] NOT NULL CHECK (cardinality(bid_prices) = 50),
    bid_sizes             double precision[] NOT NULL CHECK (cardinality(bid_sizes) = 50),
    ask_prices            double precision[] NOT NULL CHECK (cardinality(ask_prices) = 50),
    ask_sizes             double precision[] NOT NULL CHECK (cardinality(ask_sizes) = 50),
    last_candle_start_ms  bigint NOT NULL,
    n_book_msgs           integer NOT NULL,
    n_bbo_changes         integer NOT NULL,
    bid_inserts           integer NOT NULL,
    bid_updates           integer NOT NULL,
    bid_deletes           integer NOT NULL,
    ask_inserts           integer NOT NULL,
    ask_updates           integer NOT NULL,
    ask_deletes           integer NOT NULL,
    ttl_count             integer NOT NULL,
    ttl_sum_s             double precision NOT NULL,
    ttl_sumsq_s2          double precision NOT NULL,
    n_buy_trades          integer NOT NULL,
    n_sell_trades         integer NOT NULL,
    buy_volume            double precision NOT NULL,
    sell_volume           double precision NOT NULL,
    buy_notional          double precision NOT NULL,
    sell_notional         double precision NOT NULL,
    eff_spread_wsum       double precision NOT NULL,
    eff_spread_volume     double precision NOT NULL,
    last_trade_price      double precision NOT NULL,
    late_messages         integer NOT NULL,
    book_update_id        bigint,
    book_msg_ts           bigint,
    PRIMARY KEY (symbol, ts)
);

CREATE TABLE public_trades (
    symbol       text NOT NULL,
    ts           timestamptz NOT NULL,
    trade_id     text NOT NULL,
    side         order_side NOT NULL,
    price        double precision NOT NULL CHECK (price > 0),
    size         double precision NOT NULL CHECK (size > 0),
    block_trade  boolean NOT NULL DEFAULT false,
    seq          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (symbol, trade_id, ts)
);

CREATE TABLE candles (
    symbol      text NOT NULL,
    start_time  timestamptz NOT NULL,
    open        double precision NOT NULL,
    high        double precision NOT NULL,
    low         double precision NOT NULL,
    close       double precision NOT NULL,
    volume      double precision NOT NULL CHECK (volume >= 0),
    turnover    double precision NOT NULL CHECK (turnover >= 0),
    PRIMARY KEY (symbol, start_time),
    CHECK (low <= least(open, close) AND greatest(open, close) <= high)
);
"""

# (table, time column, chunk interval, compress after, compressed order). Each primary-key column is
# segmented or ordered by, so TimescaleDB can check uniqueness (the spool back-fill's ON CONFLICT DO
# NOTHING) on compressed chunks without decompressing whole batches.
HYPERTABLES = (
    ("market_snapshots", "ts", "1 day", "7 days", "ts DESC"),
    ("public_trades", "ts", "1 day", "7 days", "ts DESC, trade_id"),
    ("candles", "start_time", "7 days", "30 days", "start_time DESC"),
)


def _retention_days() -> int:
    # `depthcharge db migrate` passes the setting; a bare `alembic upgrade` reads it the same way.
    days = context.config.attributes.get("retention_days") or load_settings().market_data_retention_days
    days = int(days)
    if days < 1:
        raise ValueError(f"MARKET_DATA_RETENTION_DAYS must be >= 1, got {days}")
    return days


def _create_timescaledb() -> tuple[str | None, str]:
    """Create the extension when the server can load it: (its version, "") or (None, why not).

    Not preloaded, TimescaleDB ends the session on CREATE EXTENSION (a FATAL, which no savepoint
    survives), so the settings are read and the creation tried on a session of its own first (see
    infra.db.timescale); the savepoint still turns an ERROR into plain tables.
    """
    conn = op.get_bind()
    support = timescale.support_from_row(*conn.execute(text(timescale.SUPPORT_SQL)).one())
    reason = support.reason
    if support.possible:
        probe = conn.engine.raw_connection()
        try:
            assert probe.driver_connection is not None
            reason = timescale.try_create(probe.driver_connection)
        finally:
            probe.close()
    if reason:
        if support.version is not None:
            log.warning("timescaledb_not_used", reason=reason)
        return None, reason
    savepoint = conn.begin_nested()
    try:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
    except DBAPIError as exc:
        detail = timescale.first_line(exc.orig or exc)
        if exc.connection_invalidated:
            # The session is gone and the migration's transaction with it: nothing to fall back on.
            raise RuntimeError(
                f"the server ended the session on CREATE EXTENSION timescaledb ({detail}); nothing was "
                "migrated. Preload timescaledb (shared_preload_libraries) or remove its package"
            ) from exc
        savepoint.rollback()
        reason = f"CREATE EXTENSION timescaledb failed: {detail}"
        log.warning("timescaledb_not_used", reason=reason)
        return None, reason
    savepoint.commit()
    version = conn.execute(
        text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    ).scalar_one()
    return str(version), ""


def _make_hypertables(retention_days: int, version: str) -> None:
    # TimescaleDB 2.x: https://docs.timescale.com/api/latest/hypertable/create_hypertable/,
    # .../compression/alter_table_compression/, .../compression/add_compression_policy/,
    # .../data-retention/add_retention_policy/. The primary keys include the time column, as
    # hypertables require for unique indexes.
    generalised = timescale.version_tuple(version) >= timescale.GENERALISED_API
    for table, time_col, chunk, compress_after, orderby in HYPERTABLES:
        if generalised:
            op.execute(
                f"SELECT create_hypertable('{table}', by_range('{time_col}', INTERVAL '{chunk}'), "
                "migrate_data => true, if_not_exists => true)"
            )
        else:
            op.execute(
                f"SELECT create_hypertable('{table}', '{time_col}', chunk_time_interval => INTERVAL '{chunk}', "
                "migrate_data => true, if_not_exists => true)"
            )
        op.execute(
            f"ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol', "
            f"timescaledb.compress_orderby = '{orderby}')"
        )
        op.execute(f"SELECT add_compression_policy('{table}', compress_after => INTERVAL '{compress_after}')")
        op.execute(f"SELECT add_retention_policy('{table}', drop_after => INTERVAL '{retention_days} days')")


def _make_plain_indexes() -> None:
    # Rows arrive in time order, so a BRIN index on time is tiny and lets retention and range scans
    # skip old blocks; the primary keys already serve per-symbol reads.
    for table, time_col, *_ in HYPERTABLES:
        op.execute(f"CREATE INDEX ix_{table}_{time_col}_brin ON {table} USING brin ({time_col})")


def upgrade() -> None:
    retention_days = _retention_days()
    # First, while this transaction holds no lock the probe's session could wait on.
    version, reason = _create_timescaledb()

    for name, values in ENUMS.items():
        labels = ", ".join(f"'{v}'" for v in values)
        op.execute(f"CREATE TYPE {name} AS ENUM ({labels})")
    op.execute(TRADING_SQL)
    op.execute(MARKET_DATA_SQL)

    settings: dict[str, object] = {
        "timescaledb": version is not None,
        "market_data_retention_days": retention_days,
    }
    if version is not None:
        _make_hypertables(retention_days, version)
        settings["timescaledb_version"] = version
    else:
        _make_plain_indexes()
        settings["timescaledb_reason"] = reason  # shown by `depthcharge db status`
    for key, value in settings.items():
        op.get_bind().execute(
            text("INSERT INTO storage_settings (key, value) VALUES (:k, CAST(:v AS jsonb))"),
            {"k": key, "v": json.dumps(value)},
        )


def downgrade() -> None:
    conn = op.get_bind()
    hypertables = conn.execute(text("SELECT value FROM storage_settings WHERE key = 'timescaledb'")).scalar()
    if hypertables:
        for table, *_ in HYPERTABLES:
            op.execute(f"SELECT remove_retention_policy('{table}', if_exists => true)")
            op.execute(f"SELECT remove_compression_policy('{table}', if_exists => true)")
    for table in ("candles", "public_trades", "market_snapshots"):
        op.execute(f"DROP TABLE {table}")
    op.execute(
        "DROP TABLE audit_log, model_versions, idempotency_keys, signals, fills, order_events, orders, "
        "position_events, positions, users, storage_settings"
    )
    op.execute("DROP FUNCTION audit_log_reject_change()")
    for name in reversed(ENUMS):
        op.execute(f"DROP TYPE {name}")
    # The timescaledb extension stays: other databases objects may use it, and dropping it is an admin's call.
