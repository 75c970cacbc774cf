"""What a fallback probe found: whether a real sync run is needed for a calendar or connection."""

from __future__ import annotations

from enum import StrEnum


class ProbeResult(StrEnum):
    UNCHANGED = "unchanged"  # nothing a sync would apply: only `last_synced_at` moved
    CHANGED = "changed"  # changes waiting, no cursor, or an expired one: a real sync is needed
    SKIPPED = "skipped"  # disabled, gone, or a sync took over meanwhile
