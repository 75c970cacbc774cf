"""Local emulator of Google Calendar v3 and Google OAuth 2.0, with a JSON control API for tests."""

from __future__ import annotations

from emulator.app import create_app
from emulator.state import EmulatorState

__all__ = ["EmulatorState", "create_app"]
