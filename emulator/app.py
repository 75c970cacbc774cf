"""The emulator's ASGI app: every emulated API plus the control API, over one EmulatorState."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from emulator import (
    control,
    google_calendar,
    google_control,
    google_oauth,
    linear_control,
    linear_graphql,
    linear_oauth,
)
from emulator.demo import seed_demo
from emulator.errors import EmulatorError, handle_emulator_error
from emulator.state import EmulatorState

# Each part contributes its routes; a new emulated API is one more entry here.
PARTS: tuple[Callable[[], list[BaseRoute]], ...] = (
    google_calendar.routes,
    google_oauth.routes,
    control.routes,
    google_control.routes,
    linear_graphql.routes,
    linear_oauth.routes,
    linear_control.routes,
)


def create_app(
    state: EmulatorState | None = None,
    *,
    demo: bool = False,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    state = state or EmulatorState()
    if demo:
        seed_demo(state)
    app = Starlette(
        routes=[*(route for part in PARTS for route in part()), *extra_routes],
        exception_handlers={EmulatorError: handle_emulator_error},
    )
    app.state.emulator = state
    return app
