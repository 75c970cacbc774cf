"""One pydantic-settings object for the whole service, read from the environment and `.env`."""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path(".calsync")


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message is one line naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # `local` is `make dev` on one machine: a key file is generated when no keys are given.
    # Anywhere else every process must share the same keys, so `production` requires them.
    environment: Literal["local", "production"] = Field(
        default="production", validation_alias=AliasChoices("CALSYNC_ENV")
    )
    database_url: str = Field(
        default=f"sqlite:///{DATA_DIR / 'calsync.db'}",
        validation_alias=AliasChoices("CALSYNC_DATABASE_URL"),
    )
    google_api_base_url: str = Field(
        default="https://www.googleapis.com", validation_alias=AliasChoices("GOOGLE_API_BASE_URL")
    )
    google_oauth_token_url: str = Field(
        default="https://oauth2.googleapis.com/token",
        validation_alias=AliasChoices("GOOGLE_OAUTH_TOKEN_URL"),
    )
    google_client_id: str = Field(default="", validation_alias=AliasChoices("GOOGLE_CLIENT_ID"))
    google_client_secret: str = Field(
        default="", validation_alias=AliasChoices("GOOGLE_CLIENT_SECRET")
    )
    google_request_timeout_s: float = Field(
        default=30.0, gt=0, validation_alias=AliasChoices("GOOGLE_REQUEST_TIMEOUT_S")
    )
    # The longest Retry-After one Google request waits out in place; a longer one reschedules the
    # whole run for the time Google named (a short setting lets tests see that quickly).
    google_rate_limit_max_wait_s: float = Field(
        default=10.0, gt=0, validation_alias=AliasChoices("GOOGLE_RATE_LIMIT_MAX_WAIT_S")
    )
    # Rate-limit waits one Linear sync absorbs in total; past that the run is rescheduled.
    linear_rate_limit_max_wait_s: float = Field(
        default=30.0, gt=0, validation_alias=AliasChoices("LINEAR_RATE_LIMIT_MAX_WAIT_S")
    )
    linear_api_url: str = Field(
        default="https://api.linear.app/graphql", validation_alias=AliasChoices("LINEAR_API_URL")
    )
    linear_oauth_token_url: str = Field(
        default="https://api.linear.app/oauth/token",
        validation_alias=AliasChoices("LINEAR_OAUTH_TOKEN_URL"),
    )
    linear_client_id: str = Field(default="", validation_alias=AliasChoices("LINEAR_CLIENT_ID"))
    linear_client_secret: str = Field(
        default="", validation_alias=AliasChoices("LINEAR_CLIENT_SECRET")
    )
    google_events_page_size: int = Field(
        default=2500, ge=1, le=2500, validation_alias=AliasChoices("GOOGLE_EVENTS_PAGE_SIZE")
    )
    encryption_keys: str = Field(
        default="", validation_alias=AliasChoices("CALSYNC_ENCRYPTION_KEYS")
    )
    calendar_sync_from_months: int = Field(
        default=1, ge=1, le=24, validation_alias=AliasChoices("CALSYNC_CALENDAR_SYNC_FROM_MONTHS")
    )
    cors_origins: str = Field(default="", validation_alias=AliasChoices("CALSYNC_CORS_ORIGINS"))
    data_dir: Path = Field(default=DATA_DIR, validation_alias=AliasChoices("CALSYNC_DATA_DIR"))
    jwt_secret: str = Field(default="", validation_alias=AliasChoices("CALSYNC_JWT_SECRET"))
    jwt_jwks_url: str = Field(default="", validation_alias=AliasChoices("CALSYNC_JWT_JWKS_URL"))
    jwt_issuer: str = Field(default="", validation_alias=AliasChoices("CALSYNC_JWT_ISSUER"))
    jwt_audience: str = Field(default="", validation_alias=AliasChoices("CALSYNC_JWT_AUDIENCE"))
    jwt_leeway_s: int = Field(
        default=30, ge=0, validation_alias=AliasChoices("CALSYNC_JWT_LEEWAY_S")
    )
    google_oauth_authorize_url: str = Field(
        default="https://accounts.google.com/o/oauth2/v2/auth",
        validation_alias=AliasChoices("GOOGLE_OAUTH_AUTHORIZE_URL"),
    )
    google_userinfo_url: str = Field(
        default="https://openidconnect.googleapis.com/v1/userinfo",
        validation_alias=AliasChoices("GOOGLE_USERINFO_URL"),
    )
    google_revoke_url: str = Field(
        default="https://oauth2.googleapis.com/revoke",
        validation_alias=AliasChoices("GOOGLE_REVOKE_URL"),
    )
    google_oauth_redirect_uri: str = Field(
        default="", validation_alias=AliasChoices("GOOGLE_OAUTH_REDIRECT_URI")
    )
    linear_oauth_authorize_url: str = Field(
        default="https://linear.app/oauth/authorize",
        validation_alias=AliasChoices("LINEAR_OAUTH_AUTHORIZE_URL"),
    )
    linear_oauth_revoke_url: str = Field(
        default="https://api.linear.app/oauth/revoke",
        validation_alias=AliasChoices("LINEAR_OAUTH_REVOKE_URL"),
    )
    linear_oauth_redirect_uri: str = Field(
        default="", validation_alias=AliasChoices("LINEAR_OAUTH_REDIRECT_URI")
    )
    # Signs the OAuth `state`; empty falls back to CALSYNC_JWT_SECRET (local dev only).
    state_secret: str = Field(default="", validation_alias=AliasChoices("CALSYNC_STATE_SECRET"))

    # Where Google can reach our webhook (https); empty turns push off and leaves freshness to
    # the fallback sweep. http is accepted only for localhost, for tests and local runs.
    public_base_url: str = Field(
        default="", validation_alias=AliasChoices("CALSYNC_PUBLIC_BASE_URL")
    )
    # Time-driven settings are in seconds, so tests run the real schedules with short ones.
    push_channel_ttl_s: int = Field(
        default=7 * 24 * 3600, ge=60, validation_alias=AliasChoices("CALSYNC_PUSH_CHANNEL_TTL_S")
    )
    # The renewal flow replaces channels expiring within this window; it runs every
    # `channel_renewal_interval_s`, so a channel gets several chances before it expires.
    channel_renew_before_s: int = Field(
        default=48 * 3600, ge=1, validation_alias=AliasChoices("CALSYNC_CHANNEL_RENEW_BEFORE_S")
    )
    channel_renewal_interval_s: int = Field(
        default=12 * 3600, ge=1, validation_alias=AliasChoices("CALSYNC_CHANNEL_RENEWAL_INTERVAL_S")
    )
    # How often the sweeps run, and how long since its last sync makes a row worth probing.
    fallback_sync_interval_s: int = Field(
        default=30 * 60, ge=1, validation_alias=AliasChoices("CALSYNC_FALLBACK_SYNC_INTERVAL_S")
    )
    # More stale rows than this and a sweep fans out shard runs of at most this many rows each,
    # which any worker of the pool may take (flows/sweep_shards.py).
    sweep_shard_size: int = Field(
        default=2000, ge=1, validation_alias=AliasChoices("CALSYNC_SWEEP_SHARD_SIZE")
    )
    # How long a sync's lease on its row lasts without renewal (runs renew it as pages arrive):
    # a stalled run loses it after this and may then write nothing more.
    sync_lease_ttl_s: float = Field(
        default=180.0, gt=0, validation_alias=AliasChoices("CALSYNC_SYNC_LEASE_TTL_S")
    )
    # How often each API process starts the syncs still owed (Prefect was slow or down when they
    # were asked for) and reconciles runs Prefect ended or left waiting (api/owed_starts.py).
    start_retry_interval_s: float = Field(
        default=2.0, gt=0, le=300, validation_alias=AliasChoices("CALSYNC_START_RETRY_INTERVAL_S")
    )
    # A run still scheduled or pending this long after it was due is cancelled and replaced.
    stuck_run_after_s: float = Field(
        default=600.0, gt=0, validation_alias=AliasChoices("CALSYNC_STUCK_RUN_AFTER_S")
    )
    # Off in tests and benchmarks, so scheduled sweeps never fire in the middle of a measurement.
    schedules_active: bool = Field(
        default=True, validation_alias=AliasChoices("CALSYNC_SCHEDULES_ACTIVE")
    )

    # Per-user limits in each API process (core/rate_limits.py), far above what a person clicking
    # in the frontend reaches; tests and benchmarks tune them.
    limit_sync_starts_per_minute: float = Field(
        default=30, gt=0, validation_alias=AliasChoices("CALSYNC_LIMIT_SYNC_STARTS_PER_MINUTE")
    )
    limit_sync_starts_burst: int = Field(
        default=10, ge=1, validation_alias=AliasChoices("CALSYNC_LIMIT_SYNC_STARTS_BURST")
    )
    limit_calendar_changes_per_minute: float = Field(
        default=30,
        gt=0,
        validation_alias=AliasChoices("CALSYNC_LIMIT_CALENDAR_CHANGES_PER_MINUTE"),
    )
    limit_calendar_changes_burst: int = Field(
        default=20, ge=1, validation_alias=AliasChoices("CALSYNC_LIMIT_CALENDAR_CHANGES_BURST")
    )
    limit_stream_opens_per_minute: float = Field(
        default=30, gt=0, validation_alias=AliasChoices("CALSYNC_LIMIT_STREAM_OPENS_PER_MINUTE")
    )
    limit_stream_opens_burst: int = Field(
        default=10, ge=1, validation_alias=AliasChoices("CALSYNC_LIMIT_STREAM_OPENS_BURST")
    )
    limit_open_streams: int = Field(
        default=10, ge=1, validation_alias=AliasChoices("CALSYNC_LIMIT_OPEN_STREAMS")
    )

    log_format: Literal["text", "json"] = Field(
        default="text", validation_alias=AliasChoices("CALSYNC_LOG_FORMAT")
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias=AliasChoices("CALSYNC_LOG_LEVEL")
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql+psycopg:// URL")
        if value.startswith("postgresql://"):
            # psycopg 3 is the only driver we ship; the bare scheme would pick psycopg2.
            return "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator(
        "google_api_base_url", "google_oauth_token_url", "linear_api_url", "linear_oauth_token_url"
    )
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator(
        "google_oauth_authorize_url",
        "google_userinfo_url",
        "google_revoke_url",
        "linear_oauth_authorize_url",
        "linear_oauth_revoke_url",
    )
    @classmethod
    def _oauth_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("google_oauth_redirect_uri", "linear_oauth_redirect_uri")
    @classmethod
    def _redirect_uri(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _renewal_before_expiry(self) -> Settings:
        # Otherwise a channel can expire between two renewals, or is replaced on every run.
        if not self.channel_renewal_interval_s < self.channel_renew_before_s:
            raise ValueError(
                "CALSYNC_CHANNEL_RENEWAL_INTERVAL_S: must be shorter than "
                "CALSYNC_CHANNEL_RENEW_BEFORE_S"
            )
        if not self.channel_renew_before_s < self.push_channel_ttl_s:
            raise ValueError(
                "CALSYNC_CHANNEL_RENEW_BEFORE_S: must be shorter than CALSYNC_PUSH_CHANNEL_TTL_S"
            )
        return self

    @property
    def oauth_state_secret(self) -> str:
        return self.state_secret or self.jwt_secret

    @field_validator("public_base_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value:
            return value
        parsed = urlsplit(value)
        local = parsed.hostname in {"127.0.0.1", "localhost", "::1"}
        if parsed.scheme != "https" and not (parsed.scheme == "http" and local):
            raise ValueError("must be an https URL (http only for localhost)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        """Settings that are only wrong together; each message starts with the variable."""
        if self.environment == "production" and not self.encryption_keys.strip():
            raise ValueError(
                "CALSYNC_ENCRYPTION_KEYS: required when CALSYNC_ENV=production (the default), "
                "so every machine reads the same tokens; CALSYNC_ENV=local generates a key for "
                "this machine only"
            )
        if self.jwt_jwks_url:
            # Without both, a token the same identity provider signed for another app passes.
            for name, value in (
                ("CALSYNC_JWT_AUDIENCE", self.jwt_audience),
                ("CALSYNC_JWT_ISSUER", self.jwt_issuer),
            ):
                if not value:
                    raise ValueError(f"{name}: required when CALSYNC_JWT_JWKS_URL is set")
        return self

    @property
    def push_enabled(self) -> bool:
        return bool(self.public_base_url)

    @property
    def google_calendar_endpoint(self) -> str:
        return f"{self.google_api_base_url}/calendar/v3/"


def _env_name(settings_field: str) -> str:
    info = Settings.model_fields[settings_field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return settings_field.upper()


# Renamed settings: still set, they would be ignored without a word and the defaults used.
RENAMED = {
    "CALSYNC_FALLBACK_SYNC_INTERVAL_MINUTES": "CALSYNC_FALLBACK_SYNC_INTERVAL_S",
    "CALSYNC_CHANNEL_RENEW_BEFORE_HOURS": "CALSYNC_CHANNEL_RENEW_BEFORE_S",
}


def load_settings() -> Settings:
    """Build settings, turning pydantic's report into one clear line naming the variable."""
    for old, new in RENAMED.items():
        if old in os.environ:
            raise ConfigError(f"Invalid setting {old}: renamed to {new} (in seconds)")
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # from `_consistent`, which names the variable itself
            raise ConfigError(f"Invalid setting {first['ctx']['error']}") from None
        field = str(first["loc"][0]) if first["loc"] else "?"
        name = _env_name(field) if field in Settings.model_fields else field
        raise ConfigError(f"Invalid setting {name}: {first['msg']}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def settings_or_exit(component: str | None = None) -> Settings:
    """The settings of a process that is starting: a bad one ends it with its one line on
    stderr (`calsync <component>: Invalid setting NAME: why`) and exit code 2."""
    try:
        return get_settings()
    except ConfigError as exc:
        prefix = f"calsync {component}" if component else "calsync"
        print(f"{prefix}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    # `python -m core.settings && prefect worker start ...`: a worker machine that would fail
    # every run (no keys, say) refuses to start instead.
    print(f"calsync: settings OK ({settings_or_exit().environment})")
