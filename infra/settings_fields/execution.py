"""Order execution, recovery and reconciliation settings (trading_daemon.execution; docs/execution.md).

`Settings.execution` builds ExecutionConfig: it also carries TRADING_ENABLED, a decision setting.
"""

from __future__ import annotations

from pydantic import BaseModel

from infra.settings_fields.base import setting


class ExecutionFields(BaseModel):
    """Recovery and reconciliation, idempotency, PostOnly re-pricing, the account lock, scripted intents."""

    enable_auto_recovery: bool = setting(
        True,
        "ENABLE_AUTO_RECOVERY",
        "execution",
        "Reconcile the database with the exchange at start, after every private-stream reconnect and "
        "every RECONCILE_INTERVAL_S, correcting what differs. Off: a pass only reports, and new entries "
        "stay refused while it finds discrepancies.",
    )
    enable_hanging_order_check: bool = setting(
        True,
        "ENABLE_HANGING_ORDER_CHECK",
        "execution",
        "During reconciliation, cancel orders resting longer than HANGING_ORDER_TIMEOUT_MINUTES.",
    )
    enable_fsm_auto_restore: bool = setting(
        True,
        "ENABLE_FSM_AUTO_RESTORE",
        "execution",
        "Restore the order and position state machines of live orders and positions from the database "
        "at start.",
    )
    hanging_order_timeout_minutes: float = setting(
        30,
        "HANGING_ORDER_TIMEOUT_MINUTES",
        "execution",
        "An order still Pending or Placed after this many minutes is hanging.",
        gt=0,
    )
    max_reconciliation_retries: int = setting(
        3,
        "MAX_RECONCILIATION_RETRIES",
        "execution",
        "Attempts of one reconciliation pass before it is reported failed (entries stay refused and the "
        "next pass comes at RECONCILE_INTERVAL_S).",
        ge=1,
    )
    reconciliation_retry_delay: float = setting(
        2,
        "RECONCILIATION_RETRY_DELAY",
        "execution",
        "Seconds between the attempts of one reconciliation pass.",
        ge=0,
    )
    detailed_hanging_order_logging: bool = setting(
        True,
        "DETAILED_HANGING_ORDER_LOGGING",
        "execution",
        "Log every hanging order with the exchange's view of it (else one summary line).",
    )
    reconcile_interval_s: float = setting(
        60.0,
        "RECONCILE_INTERVAL_S",
        "execution",
        "Seconds between periodic reconciliations of orders, fills, positions and the wallet.",
        gt=0,
    )
    idempotency_ttl_minutes: int = setting(
        60,
        "IDEMPOTENCY_TTL_MINUTES",
        "execution",
        "How long a submitted intent's result is kept: the same intent within it gets the same result "
        "and no second order.",
        ge=1,
    )
    order_poll_interval_s: float = setting(
        2.0,
        "ORDER_POLL_INTERVAL_S",
        "execution",
        "While the private stream is down, open orders and executions are polled over REST this often.",
        gt=0,
    )
    post_only_timeout_s: float = setting(
        15.0,
        "POST_ONLY_TIMEOUT_S",
        "execution",
        "A PostOnly order not filled within this many seconds (or refused for crossing) is cancelled "
        "and re-priced at the touch...",
        gt=0,
    )
    post_only_max_reprices: int = setting(
        3,
        "POST_ONLY_MAX_REPRICES",
        "execution",
        "...at most this many times; then the intent is left unfilled.",
        ge=0,
    )
    recv_window_margin_ms: int = setting(
        1000,
        "RECV_WINDOW_MARGIN_MS",
        "execution",
        "Clock uncertainty added to a request's recv window before the exchange's \"no such order\" "
        "counts as final after an unknown outcome (docs/execution.md).",
        ge=0,
    )
    intent_resend_max_age_s: float = setting(
        10.0,
        "INTENT_RESEND_MAX_AGE_S",
        "execution",
        "An order whose outcome was unknown and that the exchange confirmed it does not have is sent "
        "again (same orderLinkId) only while its intent is younger than this; else it is marked Failed.",
        ge=0,
    )
    account_lock_wait_s: float = setting(
        0.0,
        "ACCOUNT_LOCK_WAIT_S",
        "execution",
        "A daemon that finds another trading the same account waits this many seconds for its lock, "
        "then exits naming the holder (0: exit at once).",
        ge=0,
    )
    scripted_intent_interval_s: float = setting(
        0.0,
        "SCRIPTED_INTENT_INTERVAL_S",
        "execution",
        "Demo and tests: a scripted source submits an intent this often (entries, exits, PostOnly "
        "orders in turn). 0: off.",
        ge=0,
    )
    scripted_intent_notional_usdt: float = setting(
        200.0,
        "SCRIPTED_INTENT_NOTIONAL_USDT",
        "execution",
        "Size of each scripted entry, in USDT.",
        gt=0,
    )
