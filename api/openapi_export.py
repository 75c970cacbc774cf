"""Write the API's OpenAPI document (`python -m api.openapi_export openapi.json`; `make openapi`).

The committed `openapi.json` is what frontends generate their types from; a test keeps it
equal to what `create_app()` serves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from api.main import create_app


def document() -> dict[str, Any]:
    return create_app().openapi()


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(render(document()))
