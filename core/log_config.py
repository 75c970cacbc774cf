"""One logging configuration for every calsync process (API, runner or worker, flow runs).

`configure_logging(component)` puts one handler on the root logger: readable lines by default,
JSON lines with CALSYNC_LOG_FORMAT=json, at CALSYNC_LOG_LEVEL (INFO). It takes over the console
handlers Prefect and uvicorn install (Prefect's root level is WARNING, which hid our INFO lines)
and leaves Prefect's API handlers alone, so run logs still reach the Prefect UI. Every line
carries the component and, inside an HTTP request, its request ID (`request_id`).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

from core.settings import ConfigError, get_settings

# Set by the API's request middleware for the duration of one request.
request_id: ContextVar[str | None] = ContextVar("calsync_request_id", default=None)

# Libraries that log a line per outgoing HTTP call, URL included: quiet unless something breaks.
_QUIET = ("httpx", "httpcore", "hpack", "websockets", "urllib3", "googleapiclient")
# Attributes Prefect's run loggers add; JSON lines carry them so a line finds its run.
_RUN_FIELDS = ("flow_run_id", "flow_run_name", "task_run_id", "task_run_name")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(context)s] %(message)s"


class _Context(logging.Filter):
    """Stamps the component and the current request ID on every record the handler emits."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def filter(self, record: logging.LogRecord) -> bool:
        record.component = self.component
        rid = getattr(record, "request_id", None) or request_id.get()
        record.request_id = rid
        run = getattr(record, "flow_run_name", None) or getattr(record, "task_run_name", None)
        record.context = self.component + (f" {rid}" if rid else "") + (f" {run}" if run else "")
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, component, request or run IDs."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "component": getattr(record, "component", None),
        }
        if getattr(record, "request_id", None):
            line["request_id"] = record.request_id
        for name in _RUN_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        for name, value in getattr(record, "fields", {}).items():
            line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours, so a second `configure_logging` replaces it instead of adding another. Writes to
    whatever `sys.stderr` is at the time (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _is_console(handler: logging.Handler) -> bool:
    """A handler printing to the console that ours replaces (Prefect's, uvicorn's, ours)."""
    # By name: core/ does not import Prefect.
    return (
        isinstance(handler, _Handler)
        or type(handler) is logging.StreamHandler
        or type(handler).__name__ == "PrefectConsoleHandler"
    )


def _settings_or_defaults() -> tuple[str, str]:
    try:
        settings = get_settings()
    except ConfigError:
        # The process reports the bad setting itself (`settings_or_exit`); log meanwhile.
        return "text", "INFO"
    return settings.log_format, settings.log_level


def configure_logging(component: str) -> None:
    """Route every logger's console output through one handler of ours; safe to call again."""
    fmt, level = _settings_or_defaults()
    handler = _Handler()
    handler.addFilter(_Context(component))
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        consoles = [h for h in logger.handlers if _is_console(h)]
        for old in consoles:
            logger.removeHandler(old)
        if consoles and logger is not logging.root:
            logger.propagate = True  # uvicorn's and Prefect's own loggers now reach ours
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    # The API writes its own access log (api/request_context.py): without query strings, which
    # may carry a stream ticket, and with the request ID.
    logging.getLogger("uvicorn.access").disabled = True
