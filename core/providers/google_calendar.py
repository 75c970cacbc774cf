"""Google Calendar v3 client on `googleapiclient`: streams event pages, raises typed errors.

One client per thread: `httplib2` is not thread-safe, so a client is built and used by one thread.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.client import HTTPException
from typing import Any

import google_auth_httplib2
import httplib2
import orjson
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.model import JsonModel

from core.errors import (
    AuthError,
    CursorExpired,
    InvalidRequest,
    NeedsReauth,
    NotFound,
    RateLimited,
    RateLimitedUntil,
    SyncError,
    TransientProviderError,
)
from core.providers.google_oauth import GOOGLE_REAUTH_MESSAGE
from core.settings import Settings

logger = logging.getLogger(__name__)

SCOPES = ["https://www.googleapis.com/auth/calendar.readonly"]
MAX_PAGE_SIZE = 2500
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}
MAX_INLINE_ATTEMPTS = 3


@dataclass(frozen=True)
class EventPage:
    items: list[dict[str, Any]]
    next_sync_token: str | None = None


@dataclass(frozen=True)
class WatchedChannel:
    resource_id: str
    expires_at: datetime


@dataclass
class AccessToken:
    """The token the client is using; changes when the library refreshes it after a 401."""

    token: str
    expires_at: datetime | None
    refreshed: bool = field(default=False)


def _reason(error: HttpError) -> str:
    try:
        body = json.loads(error.content.decode() if isinstance(error.content, bytes) else "{}")
        errors = body.get("error", {}).get("errors") or [{}]
        return str(errors[0].get("reason", ""))
    except (ValueError, AttributeError):
        return ""


def _retry_after(error: HttpError) -> float | None:
    value = error.resp.get("retry-after") if error.resp is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def map_http_error(error: HttpError) -> SyncError:
    """Translate a Google HTTP error into our tree; the message names status and reason only."""
    status = int(error.resp.status)
    reason = _reason(error)
    detail = f"Google Calendar API answered {status} {reason}".strip()
    if status == 410:
        return CursorExpired(detail)
    if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS):
        return RateLimited(detail, retry_after_s=_retry_after(error))
    if status >= 500:
        return TransientProviderError(detail, retry_after_s=_retry_after(error))
    if status == 401:
        return NeedsReauth(detail, user_message=GOOGLE_REAUTH_MESSAGE)
    if status == 403:
        return AuthError(
            detail,
            user_message="Google denied access to this calendar: reconnect your Google account.",
        )
    if status == 404:
        return NotFound(detail, user_message="This calendar no longer exists in Google Calendar.")
    return InvalidRequest(detail)


class FastJsonModel(JsonModel):
    """The client library's JSON model, parsing response bodies with orjson: a page of 2,500
    events is about 1 MB, and the standard library's parser was a fifth of a sync's CPU."""

    def deserialize(self, content: bytes | str) -> Any:
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            return super().deserialize(content)


class GoogleCalendarClient:
    def __init__(
        self,
        settings: Settings,
        *,
        access_token: str,
        refresh_token: str,
        expires_at: datetime | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._credentials = Credentials(
            token=access_token,
            refresh_token=refresh_token,
            token_uri=settings.google_oauth_token_url,
            client_id=settings.google_client_id,
            client_secret=settings.google_client_secret,
            scopes=SCOPES,
            expiry=expires_at.astimezone(UTC).replace(tzinfo=None) if expires_at else None,
        )
        self._initial_token = access_token
        self._sleep = sleep
        # Retry-After waits absorbed inside one request; a longer rate limit reschedules the run.
        self._max_wait_s = settings.google_rate_limit_max_wait_s
        http = google_auth_httplib2.AuthorizedHttp(
            self._credentials,
            http=httplib2.Http(timeout=settings.google_request_timeout_s),
            max_refresh_attempts=1,
        )
        self._service = build(
            "calendar",
            "v3",
            http=http,
            static_discovery=True,
            cache_discovery=False,
            client_options={"api_endpoint": settings.google_calendar_endpoint},
            model=FastJsonModel(),
        )

    @property
    def access_token(self) -> AccessToken:
        expiry = self._credentials.expiry
        return AccessToken(
            token=str(self._credentials.token),
            expires_at=expiry.replace(tzinfo=UTC) if expiry else None,
            refreshed=self._credentials.token != self._initial_token,
        )

    def _execute(self, request: Any) -> dict[str, Any]:
        """Run one request; absorb short rate-limit and 5xx waits, raise typed errors otherwise."""
        for attempt in range(1, MAX_INLINE_ATTEMPTS + 1):
            try:
                return request.execute()  # type: ignore[no-any-return]
            except HttpError as exc:
                error = map_http_error(exc)
            except RefreshError:
                raise NeedsReauth(
                    "refresh token rejected", user_message=GOOGLE_REAUTH_MESSAGE
                ) from None
            except (
                TimeoutError,
                TransportError,
                httplib2.HttpLib2Error,
                HTTPException,
                OSError,
            ) as exc:
                error = TransientProviderError(f"network error: {type(exc).__name__}")
            if not isinstance(error, TransientProviderError):
                raise error
            if isinstance(error, RateLimited) and (error.retry_after_s or 0) > self._max_wait_s:
                retry_at = datetime.now(UTC) + timedelta(seconds=error.retry_after_s or 0)
                raise RateLimitedUntil(str(error), retry_at=retry_at, provider="Google")
            if attempt == MAX_INLINE_ATTEMPTS:
                raise error
            wait = error.retry_after_s if error.retry_after_s is not None else 0.5 * 2**attempt
            if wait > self._max_wait_s:
                raise error
            logger.info("Google answered %s; waiting %.1fs (attempt %d)", error, wait, attempt)
            self._sleep(wait)
        raise AssertionError("unreachable")

    def list_calendars(self) -> list[dict[str, Any]]:
        calendars: list[dict[str, Any]] = []
        page_token: str | None = None
        while True:
            page = self._execute(
                self._service.calendarList().list(maxResults=250, pageToken=page_token)
            )
            calendars.extend(page.get("items", []))
            page_token = page.get("nextPageToken")
            if not page_token:
                return calendars

    def iter_event_pages(
        self,
        calendar_id: str,
        *,
        sync_token: str | None = None,
        time_min: datetime | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[EventPage]:
        """Yield pages of a full listing (from `time_min`) or of changes since `sync_token`.

        Google forbids `timeMin` together with `syncToken`; the sync token is only on the last page.
        """
        params: dict[str, Any] = {
            "calendarId": calendar_id,
            "singleEvents": True,
            "maxResults": page_size,
        }
        if sync_token:
            params["syncToken"] = sync_token
        elif time_min is not None:
            params["timeMin"] = time_min.astimezone(UTC).isoformat().replace("+00:00", "Z")
        page_token: str | None = None
        while True:
            response = self._execute(self._service.events().list(pageToken=page_token, **params))
            if response.get("kind") != "calendar#events" or "items" not in response:
                # Never read a malformed page as "no events": a full pass would sweep them all.
                raise TransientProviderError("Google answered events.list without an events page")
            page_token = response.get("nextPageToken")
            yield EventPage(
                items=response.get("items", []),
                next_sync_token=None if page_token else response.get("nextSyncToken"),
            )
            if not page_token:
                return

    def watch_events(
        self, calendar_id: str, *, channel_id: str, token: str, address: str, ttl_s: int
    ) -> WatchedChannel:
        """Open a push channel on the calendar's events (`events.watch`)."""
        response = self._execute(
            self._service.events().watch(
                calendarId=calendar_id,
                body={
                    "id": channel_id,
                    "type": "web_hook",
                    "address": address,
                    "token": token,
                    "params": {"ttl": str(ttl_s)},
                },
            )
        )
        expiration_ms = response.get("expiration")
        expires_at = (
            datetime.fromtimestamp(int(expiration_ms) / 1000, UTC)
            if expiration_ms
            else datetime.now(UTC) + timedelta(seconds=ttl_s)
        )
        return WatchedChannel(resource_id=str(response["resourceId"]), expires_at=expires_at)

    def stop_channel(self, channel_id: str, resource_id: str) -> None:
        """Stop a push channel (`channels.stop`); Google answers 404 if it is already gone."""
        self._execute(
            self._service.channels().stop(body={"id": channel_id, "resourceId": resource_id})
        )
