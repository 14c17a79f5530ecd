"""Decisions (issue 12): strategy statistics, detections, support/resistance levels, the ML gate's predictions.

Reserved in the chain so that parallel work lands without two heads; it changes nothing until that work
fills it, and is removed if that work needs no schema.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _ml_gate_upgrade()
    _detection_upgrade()
    _strategies_upgrade()


def downgrade() -> None:
    _strategies_downgrade()
    _detection_downgrade()
    _ml_gate_downgrade()


# ---- ML gate: predictions of the production and shadow models, for comparison -----------------------
# One row per (symbol, row ts, model version) while a shadow model is served: the production model's and the
# shadow's predictions of the same row side by side (docs/decisions.md). Arrays are per horizon (horizons_s
# order); probabilities are flattened per horizon as down, flat, up.


def _ml_gate_upgrade() -> None:
    op.execute(
        """
        CREATE TABLE model_predictions (
            symbol               text NOT NULL,
            ts                   timestamptz NOT NULL,
            model_version        text NOT NULL,
            role                 text NOT NULL CHECK (role IN ('production', 'shadow')),
            horizons_s           integer[] NOT NULL,
            direction            smallint[] NOT NULL,
            probabilities        double precision[] NOT NULL,
            confidence           double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
            expected_return_bps  double precision[] NOT NULL,
            latency_ms           double precision,
            created_at           timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (symbol, ts, model_version),
            CHECK (cardinality(direction) = cardinality(horizons_s)),
            CHECK (cardinality(probabilities) = 3 * cardinality(horizons_s)),
            CHECK (cardinality(expected_return_bps) = cardinality(horizons_s))
        )
        """
    )
    op.execute("CREATE INDEX ix_model_predictions_version_ts ON model_predictions (model_version, ts DESC)")
    op.execute(
        "CREATE INDEX ix_signals_model_version ON signals (model_version, ts DESC) WHERE model_version IS NOT NULL"
    )
    # One signal per source per row: the decision engine's writer retries a batch whose commit it did not
    # see, and the key makes that replay a no-op instead of a duplicate.
    op.execute("CREATE UNIQUE INDEX ux_signals_symbol_ts_source ON signals (symbol, ts, source)")


def _ml_gate_downgrade() -> None:
    op.execute("DROP INDEX ux_signals_symbol_ts_source")
    op.execute("DROP INDEX ix_signals_model_version")
    op.execute("DROP TABLE model_predictions")


# ---- detection: manipulation detections and support/resistance levels ------------------------------
# `detections`: one row per detected episode (spoofing, layering) or breakout, upserted as the episode grows
# (a repeated spoof extends its detection: same detection_id, later end_at and updated_at). `sr_levels`: the
# support/resistance levels of a symbol each time the set changes, so the latest set is the rows of the
# newest computed_at (docs/detection.md).


def _detection_upgrade() -> None:
    op.execute(
        """
        CREATE TABLE detections (
            detection_id  text PRIMARY KEY,
            symbol        text NOT NULL,
            kind          text NOT NULL CHECK (kind IN ('spoofing', 'layering', 'breakout')),
            side          order_side NOT NULL,
            price_low     double precision NOT NULL CHECK (price_low > 0),
            price_high    double precision NOT NULL CHECK (price_high >= price_low),
            start_at      timestamptz NOT NULL,
            end_at        timestamptz NOT NULL CHECK (end_at >= start_at),
            detected_at   timestamptz NOT NULL,
            updated_at    timestamptz NOT NULL CHECK (updated_at >= detected_at),
            confidence    double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
            evidence      jsonb NOT NULL DEFAULT '{}'::jsonb
        )
        """
    )
    op.execute("CREATE INDEX ix_detections_symbol_start ON detections (symbol, start_at DESC)")
    op.execute(
        """
        CREATE TABLE sr_levels (
            symbol          text NOT NULL,
            computed_at     timestamptz NOT NULL,
            price           double precision NOT NULL,
            kind            text NOT NULL CHECK (kind IN ('support', 'resistance')),
            price_low       double precision NOT NULL CHECK (price_low > 0),
            price_high      double precision NOT NULL,
            strength        double precision NOT NULL CHECK (strength BETWEEN 0 AND 1),
            touches         integer NOT NULL CHECK (touches >= 1),
            volume          double precision NOT NULL CHECK (volume >= 0),
            first_touch_at  timestamptz NOT NULL,
            last_touch_at   timestamptz NOT NULL,
            broken_at       timestamptz,
            PRIMARY KEY (symbol, computed_at, price),
            CHECK (price_low <= price AND price <= price_high)
        )
        """
    )


def _detection_downgrade() -> None:
    op.execute("DROP TABLE sr_levels")
    op.execute("DROP TABLE detections")


# ---- strategies: per-strategy statistics ------------------------------------------------------------
# One row per strategy (and one for the consensus): signals sent and filtered by cost, the measured outcomes
# of signals (count, Σ and Σ² of the signed mid move in bps, hits), and trades with PnL in USDT after fees,
# split by maker and taker entries (schemas.strategies.StrategyStatistics, docs/strategies.md §5).


def _strategies_upgrade() -> None:
    op.execute(
        """
        CREATE TABLE strategy_statistics (
            strategy            text PRIMARY KEY CHECK (length(strategy) BETWEEN 1 AND 64),
            enabled             boolean NOT NULL,
            signals             bigint NOT NULL DEFAULT 0 CHECK (signals >= 0),
            signals_below_cost  bigint NOT NULL DEFAULT 0 CHECK (signals_below_cost >= 0),
            measured            bigint NOT NULL DEFAULT 0 CHECK (measured >= 0),
            measured_sum_bps    double precision NOT NULL DEFAULT 0,
            measured_sumsq_bps  double precision NOT NULL DEFAULT 0 CHECK (measured_sumsq_bps >= 0),
            measured_hits       bigint NOT NULL DEFAULT 0 CHECK (measured_hits BETWEEN 0 AND measured),
            trades              bigint NOT NULL DEFAULT 0 CHECK (trades >= 0),
            wins                bigint NOT NULL DEFAULT 0 CHECK (wins BETWEEN 0 AND trades),
            maker_trades        bigint NOT NULL DEFAULT 0 CHECK (maker_trades >= 0),
            taker_trades        bigint NOT NULL DEFAULT 0 CHECK (taker_trades >= 0),
            gross_pnl           numeric NOT NULL DEFAULT 0,
            fees                numeric NOT NULL DEFAULT 0,
            net_pnl             numeric NOT NULL DEFAULT 0,
            maker_net_pnl       numeric NOT NULL DEFAULT 0,
            taker_net_pnl       numeric NOT NULL DEFAULT 0,
            last_trade_ms       bigint NOT NULL DEFAULT 0 CHECK (last_trade_ms >= 0),
            updated_at          timestamptz NOT NULL DEFAULT now(),
            CHECK (maker_trades + taker_trades = trades),
            CHECK (net_pnl = gross_pnl - fees)
        )
        """
    )


def _strategies_downgrade() -> None:
    op.execute("DROP TABLE strategy_statistics")
