"""The emulator's whole in-memory world: one EmulatorState per app."""

from __future__ import annotations

import secrets

from starlette.requests import Request

from emulator.accounts import AccessGrant, Account, GoogleAuth, RefreshGrant
from emulator.calendar_store import Calendar
from emulator.faults import Faults
from emulator.linear_state import LinearState
from emulator.listing import Listings
from emulator.push import Push
from emulator.timeutil import now


class GoogleState:
    def __init__(self) -> None:
        self.auth = GoogleAuth()
        self.calendars: dict[str, Calendar] = {}
        self.listings = Listings()
        self.push = Push()

    def add_account(
        self, email: str, refresh_token: str | None = None, access_token: str | None = None
    ) -> tuple[Account, RefreshGrant, AccessGrant]:
        """Create (or reuse) an account with its primary calendar; issue refresh + access tokens."""
        auth = self.auth
        for token, grants in (
            (refresh_token, auth.refresh_grants),
            (access_token, auth.access_grants),
        ):
            if token is not None and token in grants and grants[token].email != email:
                raise ValueError("token already belongs to another account")
        account = self.ensure_account(email)
        refresh = auth.issue_refresh(email, token=refresh_token)
        access = auth.issue_access(email, refresh_token=refresh.token, token=access_token)
        return account, refresh, access

    def ensure_account(self, email: str) -> Account:
        """The account for `email`, created with its primary calendar (id = email) on first use."""
        account = self.auth.accounts.get(email)
        if account is None:
            account = Account(email, str(10**20 + secrets.randbelow(9 * 10**20)), email)
            self.auth.accounts[email] = account
            self.add_calendar(email, calendar_id=email, summary=email, primary=True)
        return account

    def add_calendar(
        self,
        email: str,
        *,
        summary: str,
        calendar_id: str | None = None,
        time_zone: str = "UTC",
        background_color: str | None = None,
        description: str | None = None,
        primary: bool = False,
    ) -> Calendar:
        account = self.auth.accounts[email]
        calendar_id = calendar_id or f"c_{secrets.token_hex(16)}@group.calendar.google.com"
        if calendar_id in self.calendars:
            raise ValueError(f"calendar {calendar_id} already exists")
        calendar = Calendar(
            calendar_id, email, summary, time_zone, description, primary=primary, created=now()
        )
        if background_color:
            calendar.background_color = background_color
        if primary:
            for other in self.calendars_of(email):
                other.primary = False
            account.primary_calendar_id = calendar_id
        self.calendars[calendar_id] = calendar
        account.calendar_ids.append(calendar_id)
        return calendar

    def calendars_of(self, email: str) -> list[Calendar]:
        account = self.auth.accounts[email]
        calendars = [self.calendars[cid] for cid in account.calendar_ids]
        return sorted(calendars, key=lambda c: not c.primary)

    def calendar_for(self, email: str, calendar_id: str) -> Calendar | None:
        """The calendar as `email` sees it: "primary" is an alias; others' calendars are hidden."""
        if calendar_id == "primary":
            calendar_id = self.auth.accounts[email].primary_calendar_id
        calendar = self.calendars.get(calendar_id)
        return calendar if calendar is not None and calendar.owner == email else None


class EmulatorState:
    """Everything the emulated APIs know. Another API adds its own part here and to `reset`."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.google = GoogleState()
        self.linear = LinearState()

    def reset(self) -> None:
        self.faults.clear()  # lets requests still waiting out a delay go on
        self.faults = Faults()
        self.google = GoogleState()
        self.linear = LinearState()


def get_state(request: Request) -> EmulatorState:
    return request.app.state.emulator


def get_linear(request: Request) -> LinearState:
    return get_state(request).linear
