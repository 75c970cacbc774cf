"""Which app-database errors mean "the database cannot answer now" (retry later) rather than "this
statement or schema is wrong" (a bug).

The API answers the first kind with 503 `unavailable` and `Retry-After` (api/main.py) instead of
the catch-all 500: PostgreSQL refusing connections ("too many clients"), restarting, unreachable,
a connection cut mid-request, the pool lending none in time, SQLite's lock timeouts. A missing
table or a bad statement stays a 500, and is logged as one.
"""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy import exc as sa_exc

# SQLSTATE classes of a server that cannot serve now: connection exceptions (08), insufficient
# resources (53: "too many clients", out of memory or disk), operator intervention (57: shutdown,
# a terminated backend, "cannot connect now", a cancelled statement).
UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})
SQLITE_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (as SQLAlchemy raised it) says the database is away or overloaded."""
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no connection to lend in time
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    cause = exc.orig
    if isinstance(cause, psycopg.OperationalError):
        # No SQLSTATE: the server never answered (refused, unreachable, closed the socket).
        sqlstate = cause.sqlstate
        return sqlstate is None or sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES
    if isinstance(cause, sqlite3.OperationalError):
        return getattr(cause, "sqlite_errorcode", None) in SQLITE_BUSY_CODES
    return False
