"""Bring a database to the latest schema with the project's Alembic migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from core.settings import get_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.cmd_opts = None
    config.attributes["url"] = url or get_settings().database_url
    return config


def upgrade(url: str | None = None) -> None:
    config = alembic_config(url)
    command.upgrade(config, "head")


if __name__ == "__main__":
    upgrade()
