"""`GET /metrics`: the API's Prometheus metrics (api/metrics.py), for the scraper, no auth.

Expose it only on the internal network (README, "Operating calsync"): the figures are
aggregates, but nobody outside needs them.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def metrics() -> Response:
    """Prometheus metrics of this API process."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
