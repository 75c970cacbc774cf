"""The server-log check every Prefect server fixture runs at teardown flags real service errors
(the scheduler's SQLAlchemy 2.1 failure, captured from Prefect 3.8.8 with SQLAlchemy 2.1.9) and
lets known transients and ordinary records through."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.server_logs import assert_no_service_errors, service_errors

BANNER = """
 ___ ___ ___ ___ ___ ___ _____
|  _/   / _|| _|| _| (__  | |

View the API reference documentation at http://127.0.0.1:49187/docs
"""

SQLALCHEMY_2_1_SCHEDULER = """\
06:47:23.075 | ERROR   | docket.dependencies - ↩ [    94ms] schedule_deployments(){schedule_deployments}
Traceback (most recent call last):
  File "/srv/.venv/lib/python3.11/site-packages/docket/worker.py", line 1134, in _execute
    result = await execution.function(
  File "/srv/.venv/lib/python3.11/site-packages/prefect/server/services/scheduler.py", line 273, in schedule_deployments
    inserted_runs = await models.deployments._insert_scheduled_flow_runs(
  File "/srv/.venv/lib/python3.11/site-packages/sqlalchemy/orm/bulk_persistence.py", line 400, in _expand_other_attrs
    bulk_dml_setters[key](mapping)
  File "/srv/.venv/lib/python3.11/site-packages/sqlalchemy/ext/hybrid.py", line 1851, in prop
    raise exc.InvalidRequestError(
sqlalchemy.exc.InvalidRequestError: Can't evaluate bulk DML statement; please supply a bulk_dml decorated function
"""  # noqa: E501

SQLITE_LOCKED = """\
06:50:01.200 | ERROR   | prefect.server.events.services.event_persister - Error trying to save events
Traceback (most recent call last):
  File "/srv/.venv/lib/python3.11/site-packages/sqlalchemy/engine/default.py", line 951, in do_execute
sqlite3.OperationalError: database is locked
"""  # noqa: E501

ORDINARY = """\
06:47:23.101 | INFO    | prefect.server.services.scheduler - Scheduled 3 runs.
06:47:24.002 | WARNING | prefect.server.api.server - Slow request: GET /api/health
"""


def test_the_sqlalchemy_2_1_scheduler_failure_is_flagged_with_its_traceback() -> None:
    [error] = service_errors(BANNER + ORDINARY + SQLALCHEMY_2_1_SCHEDULER + ORDINARY)

    assert error.startswith("06:47:23.075 | ERROR   | docket.dependencies")
    assert "Can't evaluate bulk DML statement" in error
    assert "06:47:24.002" not in error


def test_a_known_transient_and_ordinary_records_pass() -> None:
    assert service_errors(BANNER + ORDINARY + SQLITE_LOCKED + ORDINARY) == []


def test_a_traceback_outside_any_record_is_flagged() -> None:
    crash = 'Traceback (most recent call last):\n  File "x.py"\nRuntimeError: boom\n'

    assert len(service_errors(BANNER + crash + ORDINARY)) == 1


def test_the_teardown_check_fails_on_a_log_with_an_unexpected_error(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(BANNER + ORDINARY + SQLITE_LOCKED)
    assert_no_service_errors(log)

    log.write_text(BANNER + SQLALCHEMY_2_1_SCHEDULER)
    with pytest.raises(AssertionError, match="bulk DML"):
        assert_no_service_errors(log)
