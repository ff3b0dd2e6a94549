"""Every setting of the service, read from the environment once, validated at start.

Hazards (weak secrets, wildcard CORS, quota values past their hard maxima) are warnings
outside production and refusals in it; a JWT secret shorter than 32 bytes is refused in
every mode but the demo, which makes its own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from quota.prices import PriceError, parse_prices
from telemetry.db import PoolOptions, SslMode

log = logging.getLogger("wattwise.settings")

Environment = Literal["development", "production", "demo"]

MIN_SECRET_BYTES = 32

# Hard maxima: a typo in an environment file must not hand out an unbounded budget.
MAX_USER_DAILY_TOKENS = 5_000_000
MAX_USER_MONTHLY_TOKENS = 50_000_000
MAX_MONTHLY_SPEND_CAP = 100_000.0
MAX_RATE_PER_MINUTE = 600

DEFAULT_MODEL_PRICES = '{"gpt-4o-mini": {"input": 0.15, "output": 0.60, "max_tokens": 1024}}'

_WEAK_SECRETS = {"secret", "changeme", "password", "wattwise", "jwtsecret", "development"}
_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}  # "": a Unix socket
_DEFAULT_DB_PASSWORDS = {"", "postgres", "password", "changeme", "admin", "root", "secret"}


class ConfigError(RuntimeError):
    """The configuration is unsafe or unusable; the service refuses to start."""


_HIDDEN = ("SECRET", "KEY", "TOKEN", "PASSWORD", "URL")  # values never echoed back


def load(**overrides: object) -> Settings:
    """Settings from the environment (`overrides` win), or a ConfigError saying in one line
    which settings are bad and why."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            shown = "" if any(h in name.upper() for h in _HIDDEN) else f"={err.get('input')!s}"
            problems.append(f"{name}{shown}: {err['msg']}")
        raise ConfigError("bad setting " + "; ".join(problems)) from None


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", populate_by_name=True, frozen=True
    )

    env: Environment = Field("development", validation_alias=_env("WATTWISE_ENV"))
    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL"))
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL"))
    host: str = Field("127.0.0.1", validation_alias=_env("WATTWISE_HOST"))
    port: int = Field(8000, ge=1, le=65535, validation_alias=_env("WATTWISE_PORT"))
    workers: int = Field(1, ge=1, le=64, validation_alias=_env("WATTWISE_WORKERS"))
    data_dir: Path = Field(Path(".wattwise"), validation_alias=_env("WATTWISE_DATA_DIR"))
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("WATTWISE_CORS_ORIGINS")
    )

    # The database pool (telemetry.db.PoolOptions) and Redis connections.
    db_pool_min_size: int = Field(1, ge=0, le=100, validation_alias=_env("WATTWISE_DB_POOL_MIN"))
    db_pool_max_size: int = Field(10, ge=1, le=100, validation_alias=_env("WATTWISE_DB_POOL_MAX"))
    db_acquire_timeout: float = Field(
        5.0, gt=0, le=120, validation_alias=_env("WATTWISE_DB_ACQUIRE_TIMEOUT")
    )
    db_idle_lifetime: float = Field(300.0, ge=0, validation_alias=_env("WATTWISE_DB_IDLE_LIFETIME"))
    db_health_check_after: float = Field(
        30.0, ge=0, validation_alias=_env("WATTWISE_DB_HEALTH_CHECK_AFTER")
    )
    db_statement_timeout: float = Field(
        30.0, gt=0, le=3600, validation_alias=_env("WATTWISE_DB_STATEMENT_TIMEOUT")
    )
    db_idle_in_transaction_timeout: float = Field(
        60.0, gt=0, le=3600, validation_alias=_env("WATTWISE_DB_IDLE_IN_TRANSACTION_TIMEOUT")
    )
    db_sslmode: SslMode = Field("prefer", validation_alias=_env("WATTWISE_DB_SSLMODE"))
    db_sslrootcert: Path | None = Field(None, validation_alias=_env("WATTWISE_DB_SSLROOTCERT"))
    redis_timeout: float = Field(5.0, gt=0, le=120, validation_alias=_env("WATTWISE_REDIS_TIMEOUT"))
    redis_max_connections: int = Field(
        64, ge=1, le=10_000, validation_alias=_env("WATTWISE_REDIS_MAX_CONNECTIONS")
    )
    redis_ssl_ca: Path | None = Field(None, validation_alias=_env("WATTWISE_REDIS_SSL_CA"))

    jwt_secret: SecretStr | None = Field(None, validation_alias=_env("WATTWISE_JWT_SECRET"))
    jwt_issuer: str = Field("wattwise", min_length=1, validation_alias=_env("WATTWISE_JWT_ISSUER"))
    jwt_audience: str = Field(
        "wattwise-api", min_length=1, validation_alias=_env("WATTWISE_JWT_AUDIENCE")
    )
    token_ttl_minutes: int = Field(
        720, ge=1, le=60 * 24 * 90, validation_alias=_env("WATTWISE_TOKEN_TTL_MINUTES")
    )

    openai_base_url: str | None = Field(None, validation_alias=_env("OPENAI_BASE_URL"))
    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY"))
    model: str = Field("gpt-4o-mini", min_length=1, validation_alias=_env("WATTWISE_MODEL"))
    # The provider's own timeout for a request; the first token must come within
    # llm_first_token_seconds, else the attempt is abandoned and (while attempts remain)
    # retried. Nothing is retried after the first token.
    llm_timeout_seconds: float = Field(
        60.0, gt=0, le=600, allow_inf_nan=False, validation_alias=_env("WATTWISE_LLM_TIMEOUT")
    )
    llm_first_token_seconds: float = Field(
        20.0,
        gt=0,
        le=600,
        allow_inf_nan=False,
        validation_alias=_env("WATTWISE_LLM_FIRST_TOKEN_TIMEOUT"),
    )
    llm_attempts: int = Field(3, ge=1, le=10, validation_alias=_env("WATTWISE_LLM_ATTEMPTS"))
    # The whole turn, model rounds and their tool calls included: past it the model is cut,
    # and the narrator answers (or, once text has gone out, the turn ends turn_deadline).
    turn_deadline_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        validation_alias=_env("WATTWISE_TURN_DEADLINE_SECONDS"),
    )
    action_ttl_seconds: int = Field(
        300, ge=10, le=3600, validation_alias=_env("WATTWISE_ACTION_TTL_SECONDS")
    )

    gap_cap_seconds: int = Field(
        900, ge=60, le=24 * 3600, validation_alias=_env("WATTWISE_GAP_CAP_SECONDS")
    )
    raw_retention_days: int = Field(
        90, ge=2, le=3650, validation_alias=_env("WATTWISE_RAW_RETENTION_DAYS")
    )
    refresh_seconds: float = Field(
        5.0, gt=0, le=3600, allow_inf_nan=False, validation_alias=_env("WATTWISE_REFRESH_SECONDS")
    )
    # `wattwise demo` only: how often its simulated household sends readings (0: never).
    demo_reading_seconds: float = Field(
        10.0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        validation_alias=_env("WATTWISE_DEMO_READING_SECONDS"),
    )

    user_daily_tokens: int = Field(
        200_000, ge=0, validation_alias=_env("WATTWISE_USER_DAILY_TOKENS")
    )
    user_monthly_tokens: int = Field(
        2_000_000, ge=0, validation_alias=_env("WATTWISE_USER_MONTHLY_TOKENS")
    )
    monthly_spend_cap: float = Field(
        50.0, ge=0, allow_inf_nan=False, validation_alias=_env("WATTWISE_MONTHLY_SPEND_CAP")
    )
    rate_per_minute: int = Field(20, ge=1, validation_alias=_env("WATTWISE_RATE_PER_MINUTE"))
    rate_burst: int = Field(5, ge=1, le=100, validation_alias=_env("WATTWISE_RATE_BURST"))
    # Model name -> prices per million tokens (the spend cap's currency) and max_tokens.
    model_prices: str = Field(
        DEFAULT_MODEL_PRICES, min_length=2, validation_alias=_env("WATTWISE_MODEL_PRICES")
    )
    spend_currency: str = Field(
        "USD", pattern=r"^[A-Z]{3}$", validation_alias=_env("WATTWISE_SPEND_CURRENCY")
    )
    quota_prefix: str = Field(
        "ww:q", pattern=r"^[A-Za-z0-9:_-]{1,64}$", validation_alias=_env("WATTWISE_QUOTA_PREFIX")
    )
    reservation_lease_seconds: int = Field(
        600, ge=30, le=3600, validation_alias=_env("WATTWISE_RESERVATION_LEASE_SECONDS")
    )
    # Over budget, an energy or cost question gets a 402, or the offline narrator's answer
    # marked as degraded.
    over_budget: Literal["refuse", "narrate"] = Field(
        "refuse", validation_alias=_env("WATTWISE_OVER_BUDGET")
    )

    # Operations: logs, metrics, readiness, shutdown and the live streams.
    log_format: Literal["json", "text"] | None = Field(
        None, validation_alias=_env("WATTWISE_LOG_FORMAT")
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=_env("WATTWISE_LOG_LEVEL")
    )
    metrics_token: SecretStr | None = Field(None, validation_alias=_env("WATTWISE_METRICS_TOKEN"))
    ready_max_rollup_lag: float = Field(
        1800.0, ge=0, allow_inf_nan=False, validation_alias=_env("WATTWISE_READY_MAX_ROLLUP_LAG")
    )
    shutdown_grace_seconds: float = Field(
        20.0,
        ge=0,
        le=600,
        allow_inf_nan=False,
        validation_alias=_env("WATTWISE_SHUTDOWN_GRACE_SECONDS"),
    )
    live_min_interval: float = Field(
        0.5, ge=0, le=60, allow_inf_nan=False, validation_alias=_env("WATTWISE_LIVE_MIN_INTERVAL")
    )
    live_send_timeout: float = Field(
        10.0, gt=0, le=600, allow_inf_nan=False, validation_alias=_env("WATTWISE_LIVE_SEND_TIMEOUT")
    )
    live_resync_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        validation_alias=_env("WATTWISE_LIVE_RESYNC_SECONDS"),
    )
    live_max_streams: int = Field(
        5000, ge=1, le=1_000_000, validation_alias=_env("WATTWISE_LIVE_MAX_STREAMS")
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def pool_options(self) -> PoolOptions:
        return PoolOptions(
            min_size=min(self.db_pool_min_size, self.db_pool_max_size),
            max_size=self.db_pool_max_size,
            idle_lifetime=self.db_idle_lifetime,
            health_check_after=self.db_health_check_after,
            statement_timeout=self.db_statement_timeout,
            idle_in_transaction_timeout=self.db_idle_in_transaction_timeout,
            sslmode=self.db_sslmode,
            sslrootcert=str(self.db_sslrootcert) if self.db_sslrootcert else None,
        )

    @property
    def logs_as(self) -> Literal["json", "text"]:
        """JSON lines, except in the demo (a person reads its terminal)."""
        return self.log_format or ("text" if self.env == "demo" else "json")

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def llm_configured(self) -> bool:
        return self.openai_base_url is not None or self.openai_api_key is not None


def _secret_is_weak(secret: str) -> bool:
    lowered = secret.lower()
    return len(set(secret)) < 10 or any(
        lowered.startswith(w) or lowered.endswith(w) for w in _WEAK_SECRETS
    )


def _clamped(settings: Settings, warnings: list[str]) -> Settings:
    limits = {
        "user_daily_tokens": MAX_USER_DAILY_TOKENS,
        "user_monthly_tokens": MAX_USER_MONTHLY_TOKENS,
        "monthly_spend_cap": MAX_MONTHLY_SPEND_CAP,
        "rate_per_minute": MAX_RATE_PER_MINUTE,
    }
    update: dict[str, float | int] = {}
    for name, maximum in limits.items():
        value = getattr(settings, name)
        if value > maximum:
            warnings.append(f"{name}={value} is above its hard maximum; clamped to {maximum}")
            update[name] = maximum
    return settings.model_copy(update=update) if update else settings


def check(settings: Settings, *, needs_secret: bool = True) -> tuple[Settings, list[str]]:
    """Validate the hazards; returns the settings to run with and the warnings to log.

    Raises ConfigError for what must not start: a missing or short JWT secret (outside the
    demo), and in production every hazard that is only a warning elsewhere. Commands that
    neither serve nor sign (migrate, seeding) pass needs_secret=False.
    """
    refusals: list[str] = []
    warnings: list[str] = []
    hazards: list[str] = []

    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    if secret is None:
        if needs_secret and settings.env != "demo":
            refusals.append("WATTWISE_JWT_SECRET is not set")
    elif len(secret.encode()) < MIN_SECRET_BYTES:
        refusals.append(f"WATTWISE_JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes")
    elif _secret_is_weak(secret):
        hazards.append("WATTWISE_JWT_SECRET looks weak (few distinct characters or a common word)")

    try:
        parse_prices(settings.model_prices)
    except PriceError as exc:
        refusals.append(f"WATTWISE_MODEL_PRICES: {exc}")

    for name, path in (
        ("WATTWISE_DB_SSLROOTCERT", settings.db_sslrootcert),
        ("WATTWISE_REDIS_SSL_CA", settings.redis_ssl_ca),
    ):
        if path is not None and not path.is_file():
            refusals.append(f"{name}: no file {path}")
    if settings.db_sslrootcert is not None and settings.db_sslmode != "verify-full":
        warnings.append("WATTWISE_DB_SSLROOTCERT is only used with WATTWISE_DB_SSLMODE=verify-full")
    if settings.db_pool_min_size > settings.db_pool_max_size:
        warnings.append("WATTWISE_DB_POOL_MIN is above WATTWISE_DB_POOL_MAX; the maximum is used")

    if "*" in settings.cors_origins:
        hazards.append("WATTWISE_CORS_ORIGINS allows every origin ('*')")

    if settings.production:
        if settings.database_url is None:
            refusals.append("DATABASE_URL is required in production (no embedded database)")
        else:
            password = urlsplit(settings.database_url).password
            if password is None or password in _DEFAULT_DB_PASSWORDS:
                warnings.append("the database password in DATABASE_URL is empty or a default")
            host = urlsplit(settings.database_url).hostname or ""
            if settings.db_sslmode != "verify-full" and host not in _LOCAL_HOSTS:
                warnings.append(
                    f"WATTWISE_DB_SSLMODE={settings.db_sslmode}: the database server's "
                    "certificate is not verified (verify-full does)"
                )
        if settings.metrics_token is None:
            warnings.append(
                "GET /metrics answers anyone who reaches the service; set "
                "WATTWISE_METRICS_TOKEN or keep the port private"
            )
        refusals.extend(hazards)
    else:
        warnings.extend(hazards)

    if refusals:
        raise ConfigError("refusing to start: " + "; ".join(refusals))
    return _clamped(settings, warnings), warnings
