"""Exchange and venue settings (and the daemon's start-up retries): ExchangeConfig, StartupConfig."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr, field_validator

from infra.configs import VENUE_URLS, ExchangeConfig, ExchangeName, StartupConfig, VenueUrls
from infra.settings_fields.base import blank_is_none, setting


class ExchangeFields(BaseModel):
    """The venue, its URLs and credentials, the mainnet opt-in, clock sync, circuit breakers, start-up."""

    exchange_name: ExchangeName = setting(
        "sim",
        "EXCHANGE",
        "exchange",
        "The venue: sim (the paper exchange), testnet or mainnet. Chooses the three URLs below.",
    )
    bybit_rest_url: str | None = setting(
        None, "BYBIT_REST_URL", "exchange", "Overrides the venue's REST base URL."
    )
    bybit_ws_public_url: str | None = setting(
        None, "BYBIT_WS_PUBLIC_URL", "exchange", "Overrides the venue's public (linear) stream URL."
    )
    bybit_ws_private_url: str | None = setting(
        None, "BYBIT_WS_PRIVATE_URL", "exchange", "Overrides the venue's private stream URL."
    )
    bybit_api_key: SecretStr | None = setting(
        None,
        "BYBIT_API_KEY",
        "exchange",
        "Account API key. Unset: the daemon records market data without credentials; set, they are "
        "checked at start-up.",
    )
    bybit_api_secret: SecretStr | None = setting(
        None, "BYBIT_API_SECRET", "exchange", "Secret of BYBIT_API_KEY."
    )
    live_trading_mainnet: str = setting(
        "",
        "LIVE_TRADING_MAINNET",
        "exchange",
        "Must be `yes` for the daemon to trade with EXCHANGE=mainnet (real money); without it a daemon "
        "with TRADING_ENABLED=true on mainnet refuses to start. Recording mainnet needs no opt-in.",
    )
    clock_sync_interval_s: float = setting(
        300.0,
        "CLOCK_SYNC_INTERVAL_S",
        "exchange",
        "Seconds between measurements of the offset to the exchange clock (also re-measured after a "
        "retCode 10002).",
        gt=0,
    )
    circuit_breaker_failure_threshold: int = setting(
        5,
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
        "exchange",
        "Venue failures in a row that open a circuit breaker.",
        ge=1,
    )
    circuit_breaker_cooldown_s: float = setting(
        60.0,
        "CIRCUIT_BREAKER_COOLDOWN_S",
        "exchange",
        "Seconds after which an open breaker lets one trial call through.",
        ge=0,
    )

    startup_retry_max_s: float = setting(
        30.0,
        "STARTUP_RETRY_MAX_S",
        "daemon start-up",
        "Start-up steps are retried until they succeed; the longest wait between two attempts, in "
        "seconds (the first wait is 0.5 s).",
        ge=0.5,
    )

    @field_validator(
        "bybit_rest_url",
        "bybit_ws_public_url",
        "bybit_ws_private_url",
        "bybit_api_key",
        "bybit_api_secret",
        mode="before",
    )
    @classmethod
    def _venue_empty_is_unset(cls, value: object) -> object:
        return blank_is_none(value)

    @property
    def exchange(self) -> ExchangeConfig:
        table = VENUE_URLS[self.exchange_name]
        urls = VenueUrls(
            (self.bybit_rest_url or table.rest).rstrip("/"),
            self.bybit_ws_public_url or table.ws_public,
            self.bybit_ws_private_url or table.ws_private,
        )
        return ExchangeConfig(
            name=self.exchange_name,
            urls=urls,
            api_key=self.bybit_api_key,
            api_secret=self.bybit_api_secret,
            live_trading_mainnet=self.live_trading_mainnet.strip() == "yes",
            clock_sync_interval_s=self.clock_sync_interval_s,
            breaker_failure_threshold=self.circuit_breaker_failure_threshold,
            breaker_cooldown_s=self.circuit_breaker_cooldown_s,
        )

    @property
    def startup(self) -> StartupConfig:
        return StartupConfig(retry_max_s=self.startup_retry_max_s)
