"""Event start/end values: all-day dates or zoned date-times, in and out of Google JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from emulator.timeutil import local_midnight_ts, zone


@dataclass(frozen=True, slots=True)
class EventTime:
    day: date | None = None
    moment: datetime | None = None
    time_zone: str | None = None

    @classmethod
    def parse(cls, data: object) -> EventTime:
        if not isinstance(data, dict):
            raise ValueError("start/end must be an object")
        tz_name = data.get("timeZone")
        if tz_name is not None:
            zone(str(tz_name))
        if data.get("date") is not None and data.get("dateTime") is not None:
            raise ValueError("start/end takes either date or dateTime, not both")
        if data.get("date") is not None:
            return cls(day=date.fromisoformat(str(data["date"])), time_zone=tz_name)
        if data.get("dateTime") is None:
            raise ValueError("start/end needs date or dateTime")
        moment = datetime.fromisoformat(str(data["dateTime"]))
        if moment.tzinfo is None:
            if tz_name is None:
                raise ValueError("dateTime without offset needs a timeZone")
            moment = moment.replace(tzinfo=zone(tz_name))
        return cls(moment=moment.replace(microsecond=0), time_zone=tz_name)

    @property
    def all_day(self) -> bool:
        return self.day is not None

    def timestamp(self, calendar_tz: str) -> float:
        if self.day is not None:
            return local_midnight_ts(self.day, calendar_tz)
        assert self.moment is not None
        return self.moment.timestamp()

    def render(self, calendar_tz: str) -> dict[str, str]:
        if self.day is not None:
            return {"date": self.day.isoformat()}
        assert self.moment is not None
        rendered = {
            "dateTime": self.moment.astimezone(zone(self.time_zone or calendar_tz)).isoformat()
        }
        if self.time_zone:
            rendered["timeZone"] = self.time_zone
        return rendered

    def instance_suffix(self) -> str:
        """The part after "_" in a recurring instance id, derived from the original start."""
        if self.day is not None:
            return self.day.strftime("%Y%m%d")
        assert self.moment is not None
        return self.moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
