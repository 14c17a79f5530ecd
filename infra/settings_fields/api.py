"""Settings of the API and the dashboard (issue 13; docs/api.md). `Settings.api` builds ApiConfig: it also
needs VAR_DIR and the Dagster UI's address."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, SecretStr, field_validator

from infra.settings_fields.base import blank_is_none, setting


class ApiFields(BaseModel):
    """The API server, its accounts and tokens, the browser clients, the dashboard's files."""

    api_enabled: bool = setting(
        True, "API_ENABLED", "api", "The daemon serves the status and control API and the dashboard."
    )
    api_host: str = setting("127.0.0.1", "API_HOST", "api", "Interface the API binds to (keep it local).")
    api_port: int = setting(8000, "API_PORT", "api", "Port of the API (0: any free port).", ge=0, le=65535)
    secret_key: SecretStr | None = setting(
        None,
        "SECRET_KEY",
        "api",
        "Key that signs the API's tokens (32 bytes or more). Unset: one is generated once into "
        "$VAR_DIR/api/secret_key (mode 0600) and kept.",
    )
    app_username: str = setting(
        "admin",
        "APP_USERNAME",
        "api",
        "Name of the admin the first start creates.",
        min_length=1,
        max_length=64,
    )
    app_password: SecretStr | None = setting(
        None,
        "APP_PASSWORD",
        "api",
        "Password of the first admin, created at the first start (12 characters or more). No default: "
        "without it and without users the API refuses logins and says why.",
    )
    access_token_minutes: int = setting(
        15, "ACCESS_TOKEN_MINUTES", "api", "Lifetime of an access token.", ge=1, le=1440
    )
    refresh_token_hours: int = setting(
        24, "REFRESH_TOKEN_HOURS", "api", "Lifetime of a refresh token.", ge=1, le=24 * 90
    )
    login_attempts_per_minute: int = setting(
        5, "LOGIN_ATTEMPTS_PER_MINUTE", "api", "Failed logins a client may make per minute.", ge=1, le=1000
    )
    cors_origins: str = setting(
        "http://127.0.0.1:5173,http://localhost:5173",
        "CORS_ORIGINS",
        "api",
        "Comma-separated origins allowed to call the API from a browser (the Vite dev server by default).",
    )
    ws_client_queue: int = setting(
        256,
        "WS_CLIENT_QUEUE",
        "api",
        "Messages a WebSocket client may fall behind before it is dropped.",
        ge=8,
        le=100_000,
    )
    dashboard_dir: Path | None = setting(
        None,
        "DASHBOARD_DIR",
        "api",
        "The built dashboard the API serves. Unset: dashboard/dist of the checkout.",
    )

    @field_validator("secret_key", "app_password", mode="before")
    @classmethod
    def _api_secrets_empty_is_unset(cls, value: object) -> object:
        return blank_is_none(value)
