"""Engine, session factory and the declarative base (stable constraint names, UTC timestamps)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from core.settings import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always returned timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class DatabaseNow(FunctionElement[datetime]):
    """The database server's current UTC time plus an offset in seconds (see `db_now`)."""

    type = UTCDateTime()
    inherit_cache = True
    name = "db_now"


def db_now(offset: timedelta = timedelta(0)) -> DatabaseNow:
    """SQL for "now + offset" by the database's clock, the one every worker shares.

    Comparable with `UTCDateTime` columns on both backends and storable in them. On PostgreSQL
    it is the transaction's start time.
    """
    return DatabaseNow(offset.total_seconds())


@compiles(DatabaseNow)
def _postgres_now(element: DatabaseNow, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(now() + make_interval(secs => {compiler.process(element.clauses, **kw)}))"


@compiles(DatabaseNow, "sqlite")
def _sqlite_now(element: DatabaseNow, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLAlchemy stores datetimes in SQLite as 'YYYY-MM-DD HH:MM:SS.ffffff' text: the same
    # shape (milliseconds padded to microseconds) compares correctly as text and reads back.
    offset = compiler.process(element.clauses, **kw)
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now', {offset} || ' seconds') || '000')"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, issue BEGIN (see `_sqlite_begin`).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while a sync writes; the busy timeout absorbs short writer overlaps.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A deferred transaction that reads then writes fails at once with "database is locked"
    # when another writer got there first; IMMEDIATE takes the write lock up front and waits.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@lru_cache(maxsize=4)
def get_engine(url: str | None = None) -> Engine:
    return make_engine(url or get_settings().database_url)


# The engine of the app whose work this is, for the lifetime of its requests and background
# loops (`engine_bound`). An app keeps the database it started with even if this process's
# settings change later: tests serve several apps in threads of one process, each on its own
# database, and a loop of one must never work on another's rows.
_bound_engine: ContextVar[Engine | None] = ContextVar("calsync_bound_engine", default=None)


@contextmanager
def engine_bound(engine: Engine) -> Iterator[None]:
    """Sessions opened in this context, and in the tasks and threads it starts, use `engine`."""
    token = _bound_engine.set(engine)
    try:
        yield
    finally:
        _bound_engine.reset(token)


def current_engine() -> Engine:
    """The bound engine (`engine_bound`), else the one the settings name."""
    return _bound_engine.get() or get_engine()


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return _sessionmaker(engine or current_engine())


@lru_cache(maxsize=8)
def _sessionmaker(engine: Engine) -> sessionmaker[Session]:
    # Building a sessionmaker defines a Session subclass and its events (~0.4 ms): once per engine.
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A unit of work: commits on success, rolls back on any error."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
