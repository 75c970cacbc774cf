"""Deploys `prefect.yaml` to the work pool as the README says, then waits: what
`bench.stack.running_stack` starts in place of the runner when process workers run the flows
(`bench.scale`), so the stack's "runner" is the deployment and the workers are separate."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.support import ROOT
from deployments.names import WORK_POOL


def _prefect(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "prefect", *args], cwd=ROOT, check=True)


def main() -> None:
    _prefect("work-pool", "create", WORK_POOL, "--type", "process", "--overwrite")
    _prefect("--no-prompt", "deploy", "--all")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
