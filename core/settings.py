"""One settings object for every process, read from `VORTEX_*` environment variables and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_SECRET = "dev-only-secret-change-me-0123456789abcdef"  # noqa: S105 - refused outside dev
DEV_RAIL_SECRET = "dev-rail-webhook-secret-change-me"  # noqa: S105 - refused outside dev
DEV_PROCESSOR_SECRET = "dev-processor-feed-secret-change-me"  # noqa: S105 - refused outside dev


class Settings(BaseSettings):
    """VortexCore configuration; defaults are the embedded development services."""

    model_config = SettingsConfigDict(env_prefix="VORTEX_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    state_dir: Path = Path(".vortex")

    # External services. Unset -> `vortex dev` embeds them on the ports below.
    database_url: str | None = None
    # Connections each process keeps open, and how many more a burst may open (closed again
    # after use: a pool too small for the load reconnects on every request).
    db_pool_size: int = Field(default=20, ge=1, le=200)
    db_max_overflow: int = Field(default=5, ge=0, le=200)
    redis_url: str | None = None
    temporal_address: str | None = None
    temporal_namespace: str = "default"

    embedded_postgres_port: int = 55432
    embedded_redis_port: int = 56379
    embedded_temporal_port: int = 7233
    embedded_temporal_ui_port: int = 8233
    # Off only for throwaway data (the tests and benchmarks): a crash can then lose commits.
    embedded_postgres_fsync: bool = True

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    log_format: Literal["pretty", "json"] = "pretty"
    log_level: str = "INFO"
    max_body_bytes: int = 64 * 1024

    # Secrets: one master secret derives the JWT key, the HMAC pepper and the encryption key.
    secret_key: SecretStr = SecretStr(DEV_SECRET)
    jwt_issuer: str = "vortexcore"
    jwt_audience: str = "vortexcore-api"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 14 * 24 * 3600
    registration_token_ttl_seconds: int = 1800
    mfa_challenge_ttl_seconds: int = 300

    # Registration workflow timings (durations are settings so tests can shorten them).
    verification_code_ttl_seconds: int = 15 * 60
    verification_max_attempts: int = 5
    verification_resend_cooldown_seconds: int = 60
    registration_expiry_seconds: int = 24 * 3600
    recovery_code_count: int = 10
    default_account_currency: str = "EUR"  # the account opened when a registration completes

    # Throttling of logins and TOTP attempts (per account and per client).
    login_max_failures: int = 5
    login_failure_window_seconds: int = 900
    login_lockout_seconds: int = 900
    client_max_failures: int = 20
    # Peers whose X-Forwarded-For is believed (CIDRs or addresses, comma-separated); the client
    # is the right-most hop that is not one of them. Empty: the peer address is the client.
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)

    # Email delivery.
    email_backend: Literal["console", "memory", "smtp"] = "console"
    email_from: str = "VortexCore <no-reply@vortexcore.local>"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False

    # Payments: risk rules (minor units of the payment's currency) and the synchronous wait.
    max_single_payment_minor: int = 10_000_000
    max_payments_per_hour: int = 60
    payment_review_threshold_minor: int = 100_000
    payment_sync_wait_seconds: float = 3.0

    # Linked external accounts: days to confirm the two micro-deposit amounts, and attempts.
    link_confirmation_days: int = 3
    link_confirmation_max_attempts: int = 3
    # Every link costs the bank two micro-deposits: new links per customer per 30 days.
    link_attempts_per_30_days: int = Field(default=10, ge=1)
    db_activity_timeout_seconds: float = 30.0  # start-to-close of DB activities in payments

    # Temporal Schedules (`vortex schedules`): ids start with this prefix.
    schedule_id_prefix: str = "vortex-"
    hold_expiry_interval_seconds: int = Field(default=3600, ge=60)
    # Stranded payments (a row whose workflow never started, or ended unfinished): how often
    # the reconciler runs, and how old a row must be before it counts as stranded.
    stranded_reconcile_interval_seconds: int = Field(default=60, ge=5)
    stranded_grace_seconds: float = Field(default=60.0, ge=0)

    # Fail fast when a dependency is down (503 + Retry-After instead of a hang or a 500).
    temporal_rpc_retry_seconds: float = Field(default=2.0, gt=0)  # the API's Temporal calls
    db_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    redis_timeout_seconds: float = Field(default=2.0, gt=0)
    unavailable_retry_after_seconds: int = Field(default=5, ge=1)

    task_queue: str = "vortex-main"
    external_task_queue: str = "vortex-external"

    # Payment rail: the bundled simulator by default (`vortex rail`, started by `vortex dev`).
    rail_url: str = "http://127.0.0.1:8100"
    rail_port: int = 8100
    rail_webhook_secret: SecretStr = SecretStr(DEV_RAIL_SECRET)
    rail_settle_delay_seconds: float = 2.0
    rail_transient_failure_rate: float = 0.0
    rail_reject_rate: float = 0.0
    api_public_url: str = "http://127.0.0.1:8000"  # the rail calls back <this>/api/webhooks/rail
    # Card processor / ATM network feed (`POST /api/processor/events`), signed with this secret.
    processor_webhook_secret: SecretStr = SecretStr(DEV_PROCESSOR_SECRET)
    processor_wait_seconds: float = Field(default=10.0, gt=0, le=60)
    # A card authorisation's hold lapses after this unless the event names its own expiry.
    card_authorization_hold_seconds: int = Field(default=7 * 24 * 3600, ge=1, le=30 * 24 * 3600)

    # External payments: TOTP approval deadline, rail submit retries, status polling.
    payment_approval_timeout_seconds: int = 900
    rail_submit_max_attempts: int = 5
    rail_retry_initial_interval_seconds: float = 1.0  # doubles per attempt, up to a minute
    rail_poll_interval_seconds: float = 30.0  # doubles per poll, up to 20x
    payment_hold_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60, le=90 * 24 * 3600)
    # A payment waiting in requires_action is cancelled this long before its hold would expire.
    payment_hold_margin_seconds: int = Field(default=24 * 3600, ge=0)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_dev_secret_in_production(self) -> Settings:
        if self.environment == "production" and self.secret_key.get_secret_value() == DEV_SECRET:
            raise ValueError("VORTEX_SECRET_KEY must be set to a real secret in production")
        if self.environment == "production" and self.rail_webhook_secret.get_secret_value() == (
            DEV_RAIL_SECRET
        ):
            raise ValueError(
                "VORTEX_RAIL_WEBHOOK_SECRET must be set to a real secret in production"
            )
        if self.environment == "production" and (
            self.processor_webhook_secret.get_secret_value() == DEV_PROCESSOR_SECRET
        ):
            raise ValueError(
                "VORTEX_PROCESSOR_WEBHOOK_SECRET must be set to a real secret in production"
            )
        if len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("VORTEX_SECRET_KEY must be at least 32 characters")
        return self

    @property
    def effective_database_url(self) -> str:
        """The database URL to use: the configured one or the embedded default."""
        if self.database_url:
            return self.database_url
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.embedded_postgres_port}/vortex"

    @property
    def effective_redis_url(self) -> str:
        """The Redis URL to use: the configured one or the embedded default."""
        return self.redis_url or f"redis://127.0.0.1:{self.embedded_redis_port}/0"

    @property
    def effective_temporal_address(self) -> str:
        """The Temporal frontend address: the configured one or the embedded default."""
        return self.temporal_address or f"127.0.0.1:{self.embedded_temporal_port}"


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings (cached; tests build their own)."""
    return Settings()
