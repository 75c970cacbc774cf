"""Signed-in provider clients for a connection: the one place that reads, refreshes and stores
its OAuth tokens.

An access token within `TOKEN_REFRESH_MARGIN` of its expiry is refreshed before use. A refresh
holds the connection row's lock (PostgreSQL), so concurrent runs never both spend a refresh token
(Linear rotates them), and a refresh that lost the race anyway (SQLite has no row locks) takes
the tokens the winner stored. Tokens are encrypted at rest by their column type. When the
provider declares the grant dead, the connection is marked `needs_reauth` and nothing else is
touched; the user reconnects. Token writes are not fenced by a sync lease: a connection's token
serves every run of its calendars, and a fresh one is good whichever run fetched it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_factory, utcnow
from core.errors import NeedsReauth, NotFound
from core.models import CalendarConnection, ConnectionStatus, TaskConnection
from core.providers import google_oauth, linear_oauth
from core.providers.google_calendar import GoogleCalendarClient
from core.providers.google_oauth import GOOGLE_REAUTH_MESSAGE
from core.providers.linear import LINEAR_REAUTH_MESSAGE, AuthKind, LinearClient
from core.providers.oauth_token import TokenGrant
from core.settings import Settings, get_settings

logger = logging.getLogger(__name__)

TOKEN_REFRESH_MARGIN = timedelta(seconds=60)

Clock = Callable[[], datetime]
ConnectionModel = type[CalendarConnection] | type[TaskConnection]


@dataclass(frozen=True)
class Provider:
    """Where a provider's connections live and how their tokens are refreshed."""

    name: str
    model: ConnectionModel
    reauth_message: str
    refresh: Callable[[Settings, str], TokenGrant]


GOOGLE = Provider(
    "Google", CalendarConnection, GOOGLE_REAUTH_MESSAGE, google_oauth.refresh_access_token
)
LINEAR = Provider("Linear", TaskConnection, LINEAR_REAUTH_MESSAGE, linear_oauth.refresh_oauth_token)


def token_is_fresh(expires_at: datetime | None, now: datetime) -> bool:
    """True if an access token expiring at `expires_at` is good for at least the margin."""
    return expires_at is not None and expires_at - now > TOKEN_REFRESH_MARGIN


def ensure_connected(provider: Provider, status: str) -> None:
    """Raise `NeedsReauth` for a connection the user must reconnect first."""
    if status == ConnectionStatus.NEEDS_REAUTH:
        raise NeedsReauth("connection needs re-authorization", user_message=provider.reauth_message)


@dataclass(frozen=True)
class _Stored:
    access_token: str | None
    refresh_token: str | None
    expires_at: datetime | None
    auth_kind: AuthKind


class Credentials:
    """Hands out clients signed in as a connection; `clock` judges token expiry (tests move it)."""

    def __init__(
        self,
        settings: Settings | None = None,
        sessions: sessionmaker[Session] | None = None,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings or get_settings()
        self.sessions = sessions or session_factory()
        self.clock = clock

    @contextmanager
    def google_client(self, connection_id: uuid.UUID) -> Iterator[GoogleCalendarClient]:
        """A Google Calendar client for the connection (for one thread).

        Google's library refreshes a token rejected along the way: that token is stored when
        the block ends. `NeedsReauth` leaving the block marks the connection.
        """
        stored = self._load(GOOGLE, connection_id)
        access_token, expires_at = self._fresh(GOOGLE, connection_id, stored)
        client = GoogleCalendarClient(
            self.settings,
            access_token=access_token,
            refresh_token=stored.refresh_token or "",
            expires_at=expires_at,
        )
        with self._marking(GOOGLE, connection_id):
            try:
                yield client
            finally:
                current = client.access_token
                if current.refreshed:
                    self._store(GOOGLE, connection_id, current.token, current.expires_at)

    @contextmanager
    def linear_client(self, connection_id: uuid.UUID) -> Iterator[LinearClient]:
        """A Linear client for the connection, closed when the block ends.

        An OAuth access token Linear rejects is refreshed once by the client itself (through
        this module), so a dead token is told from a dead grant. `NeedsReauth` leaving the
        block marks the connection.
        """
        stored = self._load(LINEAR, connection_id)
        refreshable = stored.auth_kind == "oauth" and stored.refresh_token is not None
        access_token = stored.access_token or ""
        if refreshable:
            access_token, _ = self._fresh(LINEAR, connection_id, stored)

        def refresh(rejected: str) -> str:
            return self._refresh(LINEAR, connection_id, rejected=rejected)[0]

        client = LinearClient(
            self.settings,
            access_token=access_token,
            auth_kind=stored.auth_kind,
            refresh=refresh if refreshable else None,
        )
        with self._marking(LINEAR, connection_id), client:
            yield client

    def _load(self, provider: Provider, connection_id: uuid.UUID) -> _Stored:
        with self.sessions() as session:
            connection = session.get(provider.model, connection_id)
            if connection is None:
                raise NotFound(f"{provider.name} connection {connection_id} is gone")
            ensure_connected(provider, connection.status)
            auth_kind: AuthKind = (
                "api_key" if getattr(connection, "auth_kind", "oauth") == "api_key" else "oauth"
            )
            return _Stored(
                access_token=connection.access_token,
                refresh_token=connection.refresh_token,
                expires_at=connection.access_token_expires_at,
                auth_kind=auth_kind,
            )

    def _fresh(
        self, provider: Provider, connection_id: uuid.UUID, stored: _Stored
    ) -> tuple[str, datetime | None]:
        if stored.access_token and token_is_fresh(stored.expires_at, self.clock()):
            return stored.access_token, stored.expires_at
        return self._refresh(provider, connection_id)

    def _refresh(
        self, provider: Provider, connection_id: uuid.UUID, *, rejected: str | None = None
    ) -> tuple[str, datetime | None]:
        """A stored access token good for the margin (and not `rejected`), refreshing and
        storing the tokens under the row's lock when there is none."""
        model = provider.model
        used_refresh_token: str | None = None
        try:
            with self.sessions.begin() as session:
                connection = session.execute(
                    select(model).where(model.id == connection_id).with_for_update()
                ).scalar_one()
                access_token = connection.access_token
                expires_at = connection.access_token_expires_at
                if (
                    access_token
                    and access_token != rejected
                    and token_is_fresh(expires_at, self.clock())
                ):
                    return access_token, expires_at
                used_refresh_token = connection.refresh_token
                if used_refresh_token is None:
                    raise NeedsReauth(
                        "no refresh token stored", user_message=provider.reauth_message
                    )
                grant = provider.refresh(self.settings, used_refresh_token)
                connection.access_token = grant.access_token
                connection.access_token_expires_at = grant.expires_at
                if grant.refresh_token:
                    connection.refresh_token = grant.refresh_token
                logger.info("refreshed the %s tokens of %s", provider.name, connection_id)
                return grant.access_token, grant.expires_at
        except NeedsReauth:
            with self.sessions() as session:
                current = session.get(model, connection_id)
                if (
                    current is not None
                    and current.access_token
                    and current.refresh_token not in (None, used_refresh_token)
                ):
                    return current.access_token, current.access_token_expires_at
            self.mark_needs_reauth(provider, connection_id)
            raise

    def _store(
        self,
        provider: Provider,
        connection_id: uuid.UUID,
        access_token: str,
        expires_at: datetime | None,
    ) -> None:
        model = provider.model
        with self.sessions.begin() as session:
            session.execute(
                update(model)
                .where(model.id == connection_id)
                .values(access_token=access_token, access_token_expires_at=expires_at)
            )

    @contextmanager
    def _marking(self, provider: Provider, connection_id: uuid.UUID) -> Iterator[None]:
        try:
            yield
        except NeedsReauth:
            self.mark_needs_reauth(provider, connection_id)
            raise

    def mark_needs_reauth(self, provider: Provider, connection_id: uuid.UUID) -> None:
        model = provider.model
        with self.sessions.begin() as session:
            session.execute(
                update(model)
                .where(model.id == connection_id)
                .values(status=ConnectionStatus.NEEDS_REAUTH)
            )
