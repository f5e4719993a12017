"""Typed settings read from environment variables, one class per service.

Shared settings are unprefixed (``KAFKA_BOOTSTRAP_SERVERS``); each service's own
are prefixed with its name (``CATALOG_DATABASE_URL``). ``ptce settings doc``
prints the table in ``docs/configuration.md`` from these classes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KernelSettings(BaseSettings):
    """Settings every service reads, without prefix."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        validation_alias="KAFKA_BOOTSTRAP_SERVERS",
        default="127.0.0.1:19092",
        description="Kafka bootstrap servers, comma separated.",
    )
    kafka_topic_prefix: str = Field(
        validation_alias="KAFKA_TOPIC_PREFIX",
        default="",
        description="Prefix of every topic name, to share one broker between environments.",
    )
    kafka_enable_idempotence: bool = Field(
        validation_alias="KAFKA_ENABLE_IDEMPOTENCE",
        default=False,
        description="Idempotent producer; the embedded Tansu broker does not support it, "
        "turn it on for Apache Kafka.",
    )
    kafka_timeout_seconds: float = Field(
        validation_alias="KAFKA_TIMEOUT_SECONDS",
        default=10.0,
        gt=0,
        description="Upper bound of every single call to the broker.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        validation_alias="KAFKA_FETCH_MAX_WAIT_MS",
        default=20,
        ge=1,
        description="How long a consumer's fetch waits for data; short so events are not held.",
    )
    kafka_topic_partitions: int = Field(
        validation_alias="KAFKA_TOPIC_PARTITIONS",
        default=3,
        ge=1,
        description="Partitions of each topic created by `ptce kafka create-topics`.",
    )
    consumer_max_attempts: int = Field(
        validation_alias="CONSUMER_MAX_ATTEMPTS",
        default=5,
        ge=1,
        description="Tries of one event before it goes to the dead-letter topic.",
    )
    consumer_retry_backoff_seconds: float = Field(
        validation_alias="CONSUMER_RETRY_BACKOFF_SECONDS",
        default=0.2,
        gt=0,
        description="First back-off between tries; doubles each time.",
    )
    consumer_commit_interval_seconds: float = Field(
        validation_alias="CONSUMER_COMMIT_INTERVAL_SECONDS",
        default=0.2,
        ge=0,
        description="A consumer commits its Kafka offsets at most this often (and when idle, "
        "before its partitions move, at shutdown); 0: after every batch. Events are applied "
        "idempotently: a restart re-reads at most this much and ignores it.",
    )
    consumer_watchdog_interval_seconds: float = Field(
        validation_alias="CONSUMER_WATCHDOG_INTERVAL_SECONDS",
        default=5.0,
        gt=0,
        description="How often an idle consumer checks that it is in its group and that the "
        "broker kept its offsets; stuck, it is rebuilt.",
    )
    consumer_rejoin_timeout_seconds: float = Field(
        validation_alias="CONSUMER_REJOIN_TIMEOUT_SECONDS",
        default=30.0,
        gt=0,
        description="A consumer out of its group (no coordinator, or a rebalance not "
        "finishing) for this long is rebuilt from scratch.",
    )
    consumer_stall_seconds: float = Field(
        validation_alias="CONSUMER_STALL_SECONDS",
        default=60.0,
        gt=0,
        description="A consumer whose position stays behind its partition's end this long "
        "is stalled: logged as an error, reported by `/readyz`, rebuilt.",
    )
    outbox_retention_hours: float = Field(
        validation_alias="OUTBOX_RETENTION_HOURS",
        default=168.0,
        gt=0,
        description="How long published outbox rows are kept, so they can be re-published.",
    )
    outbox_batch_size: int = Field(
        validation_alias="OUTBOX_BATCH_SIZE",
        default=500,
        ge=1,
        description="Rows the relay publishes per batch.",
    )
    outbox_linger_ms: int = Field(
        validation_alias="OUTBOX_LINGER_MS",
        default=5,
        ge=0,
        le=1000,
        description="How long the relay, woken by a commit, waits for more before "
        "publishing: fewer, larger batches to the broker for that much more latency.",
    )
    scheduler_interval_seconds: float = Field(
        validation_alias="SCHEDULER_INTERVAL_SECONDS",
        default=30.0,
        gt=0,
        description="How often a service runs its scheduled jobs (expiring unanswered "
        "requests, completing bookings, purging old keys).",
    )
    idempotency_key_retention_hours: float = Field(
        validation_alias="IDEMPOTENCY_KEY_RETENTION_HOURS",
        default=24.0,
        gt=0,
        description="How long an `Idempotency-Key` and its answer are kept for retries.",
    )
    auth_issuer: str = Field(
        validation_alias="AUTH_ISSUER",
        default="ptce-catalog",
        description="`iss` of the access tokens the catalog signs and every service expects.",
    )
    auth_audience: str = Field(
        validation_alias="AUTH_AUDIENCE",
        default="ptce",
        description="`aud` of the access tokens.",
    )
    auth_jwks_url: str = Field(
        validation_alias="AUTH_JWKS_URL",
        default="http://127.0.0.1:8001/.well-known/jwks.json",
        description="Where the services other than the catalog fetch the token-signing keys.",
    )
    auth_token_ttl_seconds: int = Field(
        validation_alias="AUTH_TOKEN_TTL_SECONDS",
        default=600,
        ge=30,
        le=3600,
        description="Lifetime of an access token; also how long a revoked client's last "
        "token may still be accepted by the services other than the catalog.",
    )
    auth_member_recheck_seconds: float = Field(
        validation_alias="AUTH_MEMBER_RECHECK_SECONDS",
        default=2.0,
        ge=0,
        le=60,
        description="How long the services other than the catalog trust their last reading "
        "that a caller's member has not left: a departure their copy has is refused within "
        "this time. `0` reads the copy on every request.",
    )
    http_max_body_bytes: int = Field(
        validation_alias="HTTP_MAX_BODY_BYTES",
        default=1_048_576,
        ge=1,
        description="Largest request body (bytes); a larger one gets 413, whether it declares "
        "its `Content-Length` or is sent in chunks.",
    )
    http_rate_limit_per_second: float = Field(
        validation_alias="HTTP_RATE_LIMIT_PER_SECOND",
        default=100.0,
        ge=0,
        description="Requests a second one caller (a member, or a client address without a "
        "token) may make to one process, sustained; beyond, 429. `0` turns throttling off.",
    )
    http_rate_limit_burst: int = Field(
        validation_alias="HTTP_RATE_LIMIT_BURST",
        default=1000,
        ge=1,
        description="Requests one caller may make at once before the per-second rate applies.",
    )
    log_level: str = Field(validation_alias="LOG_LEVEL", default="INFO", description="Log level.")
    log_format: Literal["json", "console"] = Field(
        validation_alias="LOG_FORMAT",
        default="json",
        description="`json` for machines, `console` for people.",
    )


class ServiceSettings(KernelSettings):
    """A service's settings: the kernel's plus its own, prefixed by the service's name."""

    database_url: str = Field(
        description="SQLAlchemy URL of the service's own database (postgresql+asyncpg://…)."
    )
    http_port: int = Field(default=8000, ge=1, le=65535, description="Port of the HTTP API.")
    run_workers: bool = Field(
        default=True,
        description="Run the outbox relay and the consumers inside the API process; "
        "set false when they run as `ptce worker`.",
    )
    db_pool_size: int = Field(
        default=20,
        ge=1,
        description="Database connections kept open per process; up to half as many more "
        "are opened in a burst, and closed after it.",
    )
    db_idle_in_transaction_timeout_seconds: float = Field(
        default=10.0,
        ge=0,
        description="PostgreSQL ends a session of this service left idle inside a transaction "
        "this long (a frozen or hung process), releasing its locks for the other replicas; "
        "0: never. A service's transactions last milliseconds.",
    )


def _service_settings(prefix: str, port: int, database: str) -> type[ServiceSettings]:
    """Build a service's settings class: same fields, its own prefix and defaults."""

    class _Settings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix=prefix, extra="ignore", populate_by_name=True)

        database_url: str = Field(
            default=f"postgresql+asyncpg://postgres@127.0.0.1:55432/{database}",
            description="SQLAlchemy URL of the service's own database (postgresql+asyncpg://…).",
        )
        http_port: int = Field(default=port, ge=1, le=65535, description="Port of the HTTP API.")

    _Settings.__name__ = f"{database.capitalize()}Settings"
    return _Settings


CatalogSettings = _service_settings("CATALOG_", 8001, "catalog")
ExchangeSettings = _service_settings("EXCHANGE_", 8002, "exchange")
LedgerSettings = _service_settings("LEDGER_", 8003, "ledger")

SETTINGS_BY_SERVICE: dict[str, type[ServiceSettings]] = {
    "catalog": CatalogSettings,
    "exchange": ExchangeSettings,
    "ledger": LedgerSettings,
}
