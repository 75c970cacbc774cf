"""Prefect wrappers around the core sync engines: one flow per synced source, one task each.

Importing the package routes the process's logs through calsync's configuration
(core/log_config.py): a flow run's subprocess imports its flow from here before it logs.
"""

import prefect.main  # noqa: F401  (sets up Prefect's logging, which ours must follow)

from core.log_config import configure_logging

configure_logging("flow")
