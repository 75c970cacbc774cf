"""Push notification channels (events.watch) and delivery of Google's webhook POSTs."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from emulator.timeutil import format_http_date, now

logger = logging.getLogger(__name__)

DEFAULT_TTL_S = 7 * 24 * 3600
DELIVERY_TIMEOUT_S = 5.0


@dataclass(slots=True)
class Channel:
    id: str
    resource_id: str
    resource_uri: str
    calendar_id: str
    account: str
    address: str
    token: str | None
    expiration_ms: int
    stopped: bool = False
    message_number: int = 0
    delivered: int = 0
    failed: int = 0

    @property
    def live(self) -> bool:
        return not self.stopped and self.expiration_ms > now() * 1000

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "resource_id": self.resource_id,
            "resource_uri": self.resource_uri,
            "calendar_id": self.calendar_id,
            "account": self.account,
            "address": self.address,
            "token": self.token,
            "expiration_ms": self.expiration_ms,
            "stopped": self.stopped,
            "message_number": self.message_number,
            "delivered": self.delivered,
            "failed": self.failed,
        }


def resource_id_for(account: str, calendar_id: str) -> str:
    """Stable per watched resource and account, like Google's opaque resourceId."""
    return hashlib.sha1(f"{account}\n{calendar_id}".encode()).hexdigest()[:27]


class Push:
    def __init__(self) -> None:
        self.channels: dict[str, Channel] = {}
        self.auto_notify = True

    def live_channels(self, calendar_id: str) -> list[Channel]:
        return [c for c in self.channels.values() if c.calendar_id == calendar_id and c.live]


def notification_headers(channel: Channel, state: str) -> dict[str, str]:
    channel.message_number += 1
    headers = {
        "X-Goog-Channel-ID": channel.id,
        "X-Goog-Channel-Expiration": format_http_date(channel.expiration_ms / 1000),
        "X-Goog-Resource-ID": channel.resource_id,
        "X-Goog-Resource-URI": channel.resource_uri,
        "X-Goog-Resource-State": state,
        "X-Goog-Message-Number": str(channel.message_number),
    }
    if channel.token is not None:
        headers["X-Goog-Channel-Token"] = channel.token
    return headers


async def deliver(
    client: httpx.AsyncClient,
    channel: Channel,
    state: str,
    overrides: Mapping[str, str | None] | None = None,
) -> int | None:
    """POST one notification; returns the receiver's status, or None when it could not be reached.

    `overrides` forge headers (case-insensitively); a None value removes the header.
    """
    headers = httpx.Headers(notification_headers(channel, state))
    for name, value in (overrides or {}).items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    try:
        response = await client.post(channel.address, headers=headers, content=b"")
    except httpx.HTTPError as exc:
        channel.failed += 1
        logger.info("push to %s failed: %s", channel.address, exc)
        return None
    if response.is_success:
        channel.delivered += 1
    else:
        channel.failed += 1
    return response.status_code


def new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_S)


async def deliver_all(channels: list[Channel], state: str) -> None:
    """Background delivery: receivers' errors are counted on the channel, never raised."""
    if not channels:
        return
    async with new_client() as client:
        for channel in channels:
            await deliver(client, channel, state)
