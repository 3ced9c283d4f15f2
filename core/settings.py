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

    # Payload encryption (temporal/codec.py): every client and worker encrypts workflow and
    # activity payloads with AES-256-GCM under a key derived from `secret_key` and the active key
    # id. Older keys stay readable: `payload_old_keys` lists `id` (derived from the current
    # secret) or `id=old master secret` entries, comma-separated. Off only to measure the cost.
    payload_encryption: bool = True
    payload_key_id: str = Field(default="v1", pattern=r"^[A-Za-z0-9._-]{1,32}$")
    payload_old_keys: Annotated[SecretStr, NoDecode] = SecretStr("")
    # Codec server (`vortex codec-server`): the Temporal UI decodes payloads through it.
    codec_server_host: str = "127.0.0.1"
    codec_server_port: int = 8234
    # Origins (scheme://host:port) whose pages may call it: the Temporal UI's.
    temporal_ui_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8233", "http://localhost:8233"]
    )
    # The ops credential (bearer token); unset: derived from `secret_key` (dev and tests only).
    codec_server_token: SecretStr | None = None
    codec_session_ttl_seconds: int = Field(default=8 * 3600, ge=60, le=7 * 24 * 3600)

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

    # Notifications (issue 9): the `notifier` consumer group on the event streams, what counts
    # as a large card transaction, which credits are "money received", and how the feed
    # reclaims entries a crashed consumer left pending. Durations are settings so tests shorten.
    notification_consumer_group: str = "notifier"
    notification_streams: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["payment.events", "transaction.events", "user.events"]
    )
    notification_block_ms: int = Field(default=2000, ge=10, le=60_000)
    notification_batch_size: int = Field(default=50, ge=1, le=1000)
    notification_claim_idle_ms: int = Field(default=60_000, ge=0)  # XAUTOCLAIM after this
    notification_large_card_minor: int = Field(default=50_000, ge=1)  # 500.00 in EUR
    notification_money_received_kinds: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["transfer", "inbound_payment", "funding"]
    )
    # Workflow ids are `<prefix>notification-<event id>-<recipient>`: outbox ids restart only
    # with a new database, so only tests (which truncate) need a prefix of their own.
    notification_workflow_id_prefix: str = ""

    # Analytics (issue 14): client events (body cap, events per user per minute), the export's
    # longest range, and the monthly reports' fan-out (customers per page, children in flight,
    # pages before the parent continues as new).
    analytics_events_max_body_bytes: int = Field(default=16 * 1024, ge=1024, le=64 * 1024)
    analytics_events_per_minute: int = Field(default=600, ge=1)
    analytics_max_range_days: int = Field(default=3 * 366, ge=1)
    monthly_reports_page_size: int = Field(default=500, ge=1, le=5000)
    monthly_reports_max_in_flight: int = Field(default=50, ge=1, le=1000)
    monthly_reports_pages_per_run: int = Field(default=20, ge=1, le=1000)

    # Event relay (outbox -> Redis streams `payment.events`, `transaction.events`,
    # `user.events`), run by `vortex worker`, `vortex dev` and `vortex relay`.
    event_stream_maxlen: int = Field(default=100_000, ge=100)  # entries kept per stream (~)
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_poll_interval_seconds: float = Field(default=1.0, gt=0)  # fallback when NOTIFY is lost
    relay_retention_seconds: int = Field(default=7 * 24 * 3600, ge=0)  # published rows kept
    relay_prune_interval_seconds: float = Field(default=300.0, gt=0)

    # Staff and security (issue 10). Staff access tokens live shorter than customers'; a
    # break-glass grant lets support read one customer's data for this long.
    staff_access_token_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    break_glass_ttl_seconds: int = Field(default=30 * 60, ge=60, le=8 * 3600)
    incident_ack_sla_seconds: int = Field(default=15 * 60, ge=1)  # else escalation
    incident_max_escalations: int = Field(default=3, ge=1, le=20)
    # Risk engine: soft factors add points; this many points send a payment to review.
    risk_review_score: int = Field(default=80, ge=1, le=1000)
    risk_lookback_days: int = Field(default=90, ge=1)  # "the customer's own history"
    risk_recent_change_hours: int = Field(default=72, ge=1)  # MFA or password changes
    enumeration_404_burst: int = Field(default=20, ge=1)  # 404s in the window: a suspect
    # Compliance report: large-value transactions (minor units, any currency), structuring
    # (this many debits within `band` percent below the threshold), dormancy before waking.
    compliance_large_value_minor: int = Field(default=1_000_000, ge=1)
    compliance_structuring_count: int = Field(default=3, ge=2)
    compliance_structuring_band_percent: int = Field(default=10, ge=1, le=90)
    compliance_dormant_days: int = Field(default=180, ge=1)

    # WebSocket `/ws` (docs/websocket.md). Durations are settings so tests can shorten them.
    ws_auth_timeout_seconds: float = Field(default=10.0, gt=0)  # to send the `auth` message
    ws_heartbeat_seconds: float = Field(default=20.0, gt=0)  # a `ping` frame this often
    ws_idle_timeout_seconds: float = Field(default=60.0, gt=0)  # closed after this much silence
    ws_recheck_seconds: float = Field(default=30.0, gt=0)  # revocation backstop (Redis MGET)
    ws_queue_size: int = Field(default=256, ge=1)  # undelivered frames before slow-consumer close
    ws_max_connections_per_user: int = Field(default=5, ge=1)  # across all API processes
    ws_max_message_bytes: int = Field(default=4096, ge=256)  # inbound text frames
    ws_max_channels: int = Field(default=32, ge=1)  # subscriptions per socket
    ws_inbound_rate: float = Field(default=5.0, gt=0)  # client messages per second, sustained
    ws_inbound_burst: int = Field(default=20, ge=1)  # ... and in a burst
    ws_dedupe_window: int = Field(default=1024, ge=16)  # event ids remembered per socket
    ws_catchup_max_entries: int = Field(default=10_000, ge=1)  # per stream; more -> `resync`
    ws_read_block_ms: int = Field(default=5000, ge=10)  # XREAD BLOCK of the per-process reader
    ws_watch_token_ttl_seconds: int = Field(default=3600, ge=60)  # `vortex watch` tokens

    # Strangler-fig migration from the legacy monolith (docs/migration.md). The monolith's
    # database defaults to `vortex_legacy` on the same server as ours.
    legacy_database_url: str | None = None
    legacy_port: int = 8200  # `vortex legacy serve` / `vortex dev --legacy`
    migration_batch_size: int = Field(default=200, ge=1, le=5000)
    migration_rows_per_second: float = Field(default=500.0, gt=0)  # backfill throttle
    migration_cdc_poll_seconds: float = Field(default=2.0, gt=0)
    migration_batches_per_run: int = Field(default=200, ge=1)  # then continue-as-new
    migration_sample_size: int = Field(default=20, ge=0)  # sampled record diffs
    migration_shadow_diff_threshold: float = Field(default=0.01, ge=0, le=1)
    # Circuit breakers around the outside systems (core/breakers.py), per process: this many
    # failures in a row open a breaker; it refuses calls for the recovery time, then lets a trial
    # call through (half-open) that closes it again or reopens it.
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_recovery_seconds: float = Field(default=30.0, gt=0)
    # `/health/dependencies`: each probe answers within its own timeout; answers are cached
    # this long (0: never) so a dashboard polling it costs the dependencies nothing.
    health_check_timeout_seconds: float = Field(default=2.0, gt=0)
    health_slow_ms: float = Field(default=1000.0, gt=0)  # an answer slower than this: degraded
    health_cache_seconds: float = Field(default=2.0, ge=0)

    # Observability (issue 13, docs/observability.md). Tracing is on only with an OTLP endpoint
    # (nothing is instrumented otherwise); worker ports 0 = not served.
    otlp_endpoint: str | None = None  # e.g. http://otel-collector:4318 (OTLP over HTTP)
    otlp_headers: str = ""  # "key=value,key=value", e.g. an API key for a hosted backend
    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)  # of new traces
    service_name_prefix: str = "vortex"  # service.name = "<prefix>-<command>" (vortex-api, ...)
    worker_metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped from outside the pod
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)  # Temporal SDK metrics
    worker_app_metrics_port: int = Field(default=9465, ge=0, le=65535)  # business metrics

    # Strangler-fig gateway (`vortex gateway serve`): legacy monolith and new platform behind it.
    gateway_port: int = 8300
    gateway_legacy_url: str = "http://127.0.0.1:8200"
    gateway_new_url: str = "http://127.0.0.1:8000"
    gateway_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    gateway_read_timeout_seconds: float = Field(default=30.0, gt=0)  # between bytes, not total
    gateway_route_ttl_seconds: float = Field(default=5.0, gt=0)  # backstop to the NOTIFY
    gateway_max_connections: int = Field(default=200, ge=1)  # per upstream
    # Shadow mode: top-level or dotted JSON fields left out of the comparison (ids, timestamps).
    gateway_shadow_ignored_fields: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["id", "created_at", "updated_at", "request_id", "trace_id"]
    )
    gateway_shadow_max_body_bytes: int = Field(default=256 * 1024, ge=0)  # compared at most

    # AI (issue 14, docs/ai.md). No LLM endpoint: the local deterministic engine answers.
    llm_base_url: str | None = None  # any OpenAI-compatible endpoint, e.g. http://host/v1
    llm_api_key: SecretStr = SecretStr("not-needed")
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = Field(default=20.0, gt=0)  # one HTTP call to the endpoint
    llm_max_attempts: int = Field(default=2, ge=1)  # activity attempts before the local engine
    llm_retry_initial_seconds: float = Field(default=0.5, gt=0)
    ai_max_prompt_chars: int = Field(default=2000, ge=1)
    ai_prompts_per_minute: int = Field(default=20, ge=1)  # per customer, then 429
    ai_context_messages: int = Field(default=20, ge=2)  # recent messages the model sees
    ai_max_tool_rounds: int = Field(default=4, ge=1)  # model <-> tools rounds in one turn
    ai_turns_per_run: int = Field(default=50, ge=1)  # then AssistantWorkflow continues as new
    ai_conversation_idle_seconds: int = Field(default=86_400, ge=1)  # then its workflow ends
    ai_chat_wait_seconds: float = Field(default=60.0, gt=0)  # the route waits this long
    ai_training_interval_seconds: int = Field(default=86_400, ge=60)  # categorizer Schedule
    ai_training_min_rows: int = Field(default=50, ge=10)  # categorized rows needed to train
    ai_training_max_rows: int = Field(default=200_000, ge=100)  # newest rows used
    ai_model_min_confidence: float = Field(default=0.5, ge=0, le=1)  # below: next tier

    @field_validator(
        "trusted_proxies",
        "temporal_ui_origins",
        "notification_streams",
        "notification_money_received_kinds",
        "gateway_shadow_ignored_fields",
        mode="before",
    )
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
        if self.codec_server_token is not None and len(self.codec_server_token) < 32:
            raise ValueError("VORTEX_CODEC_SERVER_TOKEN must be at least 32 characters")
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
    def effective_legacy_database_url(self) -> str:
        """The monolith's database: the configured one or `vortex_legacy` beside ours."""
        if self.legacy_database_url:
            return self.legacy_database_url
        from sqlalchemy.engine import make_url

        url = make_url(self.effective_database_url).set(database="vortex_legacy")
        return url.render_as_string(hide_password=False)

    @property
    def effective_temporal_address(self) -> str:
        """The Temporal frontend address: the configured one or the embedded default."""
        return self.temporal_address or f"127.0.0.1:{self.embedded_temporal_port}"


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings (cached; tests build their own)."""
    return Settings()
