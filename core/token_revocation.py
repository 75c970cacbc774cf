"""Revoke a disconnected account's token at the provider, best effort: after the connection is
deleted, so a provider that fails only leaves a token we no longer hold, and it is logged."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from core.errors import SyncError
from core.models import TaskConnection
from core.providers import google_oauth, linear_oauth
from core.settings import get_settings

logger = logging.getLogger(__name__)


def google_revoker(refresh_token: str, connection_id: uuid.UUID) -> Callable[[], None]:
    def revoke() -> None:
        _best_effort(
            lambda: google_oauth.revoke_token(get_settings(), refresh_token),
            "google",
            connection_id,
        )

    return revoke


def linear_revoker(connection: TaskConnection) -> Callable[[], None] | None:
    """None for a personal API key: it is the user's own, possibly used elsewhere, so we only
    forget our copy."""
    if connection.auth_kind != "oauth":
        return None
    token, hint = connection.access_token, "access_token"
    if connection.refresh_token:
        token, hint = connection.refresh_token, "refresh_token"
    connection_id = connection.id

    def revoke() -> None:
        _best_effort(
            lambda: linear_oauth.revoke_token(get_settings(), token, hint=hint),
            "linear",
            connection_id,
        )

    return revoke


def _best_effort(call: Callable[[], bool], provider: str, connection_id: uuid.UUID) -> None:
    try:
        revoked = call()
    except SyncError as exc:
        logger.warning("revoking the %s token of %s failed: %s", provider, connection_id, exc)
        return
    except Exception:
        logger.exception("revoking the %s token of %s failed", provider, connection_id)
        return
    logger.info(
        "%s token of connection %s %s",
        provider,
        connection_id,
        "revoked" if revoked else "was already invalid",
    )
