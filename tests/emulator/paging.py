"""Walk every page of a googleapiclient listing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def list_all(
    request_factory: Callable[..., Any], **params: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every page of a listing; returns (items, raw pages)."""
    pages: list[dict[str, Any]] = []
    token = None
    while True:
        page = request_factory(**params, **({"pageToken": token} if token else {})).execute()
        pages.append(page)
        token = page.get("nextPageToken")
        if not token:
            return [item for p in pages for item in p.get("items", [])], pages
