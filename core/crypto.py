"""Encryption of OAuth tokens at rest: Fernet keys, newest first, so keys can be rotated."""

from __future__ import annotations

import logging
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core.settings import ConfigError, get_settings

logger = logging.getLogger(__name__)

DEV_KEY_FILE = "encryption.key"


def _dev_key() -> str:
    """A per-checkout key for the embedded local run, created once under the data dir."""
    settings = get_settings()
    path = settings.data_dir / DEV_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    logger.warning("CALSYNC_ENCRYPTION_KEYS is not set: using the local dev key in %s", path)
    return path.read_text().strip()


def parse_keys(raw: str) -> list[Fernet]:
    keys = [part.strip() for part in raw.split(",") if part.strip()]
    try:
        return [Fernet(key) for key in keys]
    except (ValueError, TypeError):
        raise ConfigError(
            "Invalid setting CALSYNC_ENCRYPTION_KEYS: each key must be a url-safe base64 "
            "32-byte Fernet key"
        ) from None


@lru_cache(maxsize=1)
def get_cipher() -> MultiFernet:
    raw = get_settings().encryption_keys or _dev_key()
    return MultiFernet(parse_keys(raw))


def encrypt(plaintext: str) -> str:
    return get_cipher().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return get_cipher().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise ConfigError(
            "A stored token cannot be decrypted with CALSYNC_ENCRYPTION_KEYS "
            "(was a key removed before rotation?)"
        ) from None


def rotate(ciphertext: str) -> str:
    """Re-encrypt with the newest key; old keys stay readable until every row is rotated."""
    return get_cipher().rotate(ciphertext.encode()).decode()
