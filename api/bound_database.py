"""Every request of an app works on the database the app was created with (core/db.py
`engine_bound`), as its background loops do (api/main.py lifespan), whatever this process's
settings say later. One process may serve several apps (tests do, in threads), each on its own
database. A pure ASGI middleware: streams pass through untouched, and the binding lasts as long
as the request's task, threads it hands work to included."""

from __future__ import annotations

from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from core.db import engine_bound


class BoundDatabase:
    def __init__(self, app: ASGIApp, engine: Engine) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        with engine_bound(self.engine):
            await self.app(scope, receive, send)
