"""The soak's users: seeded upstream, connected through the API as the frontend would, then
edited upstream and clicking *Sync now*; every start they ask for is written down."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx

from bench.emulator_client import EmulatorControl
from bench.soak_staleness import StalenessTracker

EVENTS_PER_CALENDAR = 20
ISSUES_PER_WORKSPACE = 10
CONNECT_WORKERS = 4
# Users edited upstream; the others stay quiet, so only a run started for their *Sync now*
# (never a sweep, which finds nothing changed) can answer it.
ACTIVE_SHARE = 0.7


@dataclass
class SoakUser:
    user_id: str
    email: str
    linear_user_id: str
    linear_api_key: str
    active: bool
    token: str = ""
    calendar_row: uuid.UUID | None = None
    workspace_row: uuid.UUID | None = None
    event_ids: list[str] = field(default_factory=list)
    issue_ids: list[str] = field(default_factory=list)
    has_channel: bool = False


class StartLedger:
    """When each row last had a start asked for (Sync now, webhook, connect): bench clock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last_request: dict[uuid.UUID, float] = {}
        self.requests: defaultdict[str, int] = defaultdict(int)
        self.refused: defaultdict[str, int] = defaultdict(int)

    def asked(self, row: uuid.UUID, source: str, at: float, accepted: bool = True) -> None:
        with self._lock:
            self.last_request[row] = max(at, self.last_request.get(row, 0.0))
            self.requests[source] += 1
            if not accepted:
                self.refused[source] += 1


def seed_users(control: EmulatorControl, count: int, rng: random.Random) -> list[SoakUser]:
    tag = uuid.uuid4().hex[:6]
    users = []
    for index in range(count):
        email = f"soak{index}-{tag}@soak.test"
        control.google_account(email)
        control.bulk_events(email, EVENTS_PER_CALENDAR)
        linear = control.linear_user(f"Soak {index}", f"soak{index}{tag}")
        user = SoakUser(
            user_id=f"soak-{tag}-{index}",
            email=email,
            linear_user_id=linear["id"],
            linear_api_key=linear["api_key"],
            active=rng.random() < ACTIVE_SHARE,
        )
        user.event_ids = [item["id"] for item in control.google_truth(email)]
        user.issue_ids = control.bulk_issues(user.linear_user_id, ISSUES_PER_WORKSPACE)
        users.append(user)
    return users


def _connect_one(api_url: str, user: SoakUser, ledger: StartLedger) -> None:
    headers = {"Authorization": f"Bearer {user.token}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=60) as http:
        url = http.get(
            "/connections/google/authorize-url", params={"login_hint": user.email}
        ).json()["url"]
        consent = httpx.get(url, follow_redirects=False, timeout=30)
        answer = {k: v[0] for k, v in parse_qs(urlsplit(consent.headers["location"]).query).items()}
        asked = time.time()
        response = http.post("/connections/google/callback", json=answer)
        response.raise_for_status()
        [calendar] = [c for c in response.json()["calendars"] if c["enabled"]]
        user.calendar_row = uuid.UUID(calendar["id"])
        ledger.asked(user.calendar_row, "connect", asked, calendar.get("run") is not None)
        asked = time.time()
        response = http.post("/connections/linear", json={"api_key": user.linear_api_key})
        response.raise_for_status()
        user.workspace_row = uuid.UUID(response.json()["id"])
        ledger.asked(user.workspace_row, "connect", asked, response.json().get("run") is not None)


def connect_users(api_url: str, users: list[SoakUser], ledger: StartLedger) -> None:
    """Each user connects Google (its primary calendar enabled, a push channel opened) and a
    Linear workspace (personal API key) through the API; both first syncs start there."""
    with ThreadPoolExecutor(CONNECT_WORKERS) as pool:
        list(pool.map(lambda user: _connect_one(api_url, user, ledger), users))


class UpstreamEditor:
    """Edits active users' calendars and workspaces upstream, a few times a second in total."""

    def __init__(
        self,
        control: EmulatorControl,
        users: list[SoakUser],
        tracker: StalenessTracker,
        ledger: StartLedger,
        rng: random.Random,
    ) -> None:
        self.control = control
        self.users = [user for user in users if user.active]
        self.tracker = tracker
        self.ledger = ledger
        self.rng = rng
        self.edits = 0
        self.failed = 0

    def run(self, until: float, per_second: float) -> None:
        while time.monotonic() < until:
            started = time.monotonic()
            user = self.rng.choice(self.users)
            try:
                if self.rng.random() < 0.5:
                    self._edit_calendar(user)
                else:
                    self._edit_workspace(user)
                self.edits += 1
            except httpx.HTTPError:
                self.failed += 1
            time.sleep(max(0.0, 1 / per_second - (time.monotonic() - started)))

    def _edit_calendar(self, user: SoakUser) -> None:
        assert user.calendar_row is not None
        roll = self.rng.random()
        now = time.time()
        if roll < 0.25 or not user.event_ids:
            day = datetime.now(UTC).date() + timedelta(days=self.rng.randint(1, 20))
            event = self.control.create_event(user.email, f"Soak {uuid.uuid4().hex[:6]}", day)
            user.event_ids.append(event["id"])
            self.tracker.event_changed(user.calendar_row, event["id"], event["etag"], now)
        elif roll < 0.85:
            event_id = self.rng.choice(user.event_ids)
            event = self.control.patch_event(user.email, event_id, f"Edit {uuid.uuid4().hex[:6]}")
            self.tracker.event_changed(user.calendar_row, event_id, event["etag"], now)
        else:
            event_id = user.event_ids.pop(self.rng.randrange(len(user.event_ids)))
            self.control.cancel_event(user.email, event_id)
            self.tracker.event_changed(user.calendar_row, event_id, None, now)
        if user.has_channel:
            # The emulator notifies the channel: the webhook is asked to start a sync.
            self.ledger.asked(user.calendar_row, "webhook", now)

    def _edit_workspace(self, user: SoakUser) -> None:
        assert user.workspace_row is not None
        roll = self.rng.random()
        now = time.time()
        if roll < 0.25 or not user.issue_ids:
            issue = self.control.create_issue(user.linear_user_id, f"Soak {uuid.uuid4().hex[:6]}")
            user.issue_ids.append(issue["id"])
            self.tracker.issue_changed(user.workspace_row, issue["id"], issue["updated_at"], now)
        elif roll < 0.85:
            issue_id = self.rng.choice(user.issue_ids)
            issue = self.control.patch_issue(issue_id, f"Edit {uuid.uuid4().hex[:6]}")
            self.tracker.issue_changed(user.workspace_row, issue_id, issue["updated_at"], now)
        else:
            issue_id = user.issue_ids.pop(self.rng.randrange(len(user.issue_ids)))
            self.control.complete_issue(issue_id)
            self.tracker.issue_changed(user.workspace_row, issue_id, None, now)


class SyncNowClicker:
    """Users pressing *Sync now* (a calendar, or all their Linear workspaces) now and then."""

    def __init__(
        self, api_url: str, users: list[SoakUser], ledger: StartLedger, rng: random.Random
    ) -> None:
        self.api_url = api_url
        self.users = users
        self.ledger = ledger
        self.rng = rng
        self.statuses: defaultdict[str, int] = defaultdict(int)

    def run(self, until: float, every_s: float) -> None:
        with httpx.Client(base_url=self.api_url, timeout=30) as http:
            while time.monotonic() < until:
                user = self.rng.choice(self.users)
                headers = {"Authorization": f"Bearer {user.token}"}
                calendar = self.rng.random() < 0.5
                row = user.calendar_row if calendar else user.workspace_row
                path = f"/calendars/{row}/sync" if calendar else "/linear/sync"
                asked = time.time()
                try:
                    status = http.post(path, headers=headers).status_code
                except httpx.HTTPError:
                    status = 0
                assert row is not None
                self.statuses[str(status)] += 1
                self.ledger.asked(row, "sync_now", asked, status == 202)
                time.sleep(self.rng.uniform(0.5, 1.5) * every_s)
