"""One pydantic-settings object for the whole service, read from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path(".calsync")


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message is one line naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
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
    push_channel_ttl_s: int = Field(
        default=7 * 24 * 3600, ge=60, validation_alias=AliasChoices("CALSYNC_PUSH_CHANNEL_TTL_S")
    )
    channel_renew_before_hours: int = Field(
        default=48, ge=1, validation_alias=AliasChoices("CALSYNC_CHANNEL_RENEW_BEFORE_HOURS")
    )
    fallback_sync_interval_minutes: int = Field(
        default=30, ge=1, validation_alias=AliasChoices("CALSYNC_FALLBACK_SYNC_INTERVAL_MINUTES")
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


def load_settings() -> Settings:
    """Build settings, turning pydantic's report into one clear line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        name = _env_name(field) if field in Settings.model_fields else field
        raise ConfigError(f"Invalid setting {name}: {first['msg']}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
