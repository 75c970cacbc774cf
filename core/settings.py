"""One pydantic-settings object for the whole service, read from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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
