"""Linear's GraphQL endpoint (`POST /linear/graphql`): authenticates, rate-limits, then reads and
resolves the query, answering like Linear with the `X-RateLimit-Requests-*` headers."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from emulator.faults import emulated
from emulator.linear_errors import (
    authentication_error,
    graphql_fault,
    invalid_query,
    rate_limit_headers,
    rate_limited,
)
from emulator.linear_query import parse_query
from emulator.linear_resolver import Resolver
from emulator.linear_state import RATE_LIMIT_REQUESTS, RATE_LIMIT_WINDOW_MS
from emulator.state import get_linear

GRAPHQL_ENDPOINT = "linear.graphql"


@emulated(GRAPHQL_ENDPOINT, graphql_fault)
async def graphql(request: Request) -> Response:
    linear = get_linear(request)
    reset_ms = linear.take_rate_limit_fault()
    if reset_ms is not None:
        raise rate_limited(reset_ms)
    viewer = linear.authenticate(request.headers.get("authorization"))
    if viewer is None:
        raise authentication_error()
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise invalid_query("Body must be a JSON object with a query.") from None
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise invalid_query("Must provide query string.")
    variables = body.get("variables") or {}
    with linear.lock:
        data = Resolver(linear, viewer, variables).run(parse_query(body["query"]))
        headers = rate_limit_headers(
            linear.now_ms() + RATE_LIMIT_WINDOW_MS, RATE_LIMIT_REQUESTS - 1
        )
    return Response(orjson.dumps({"data": data}), 200, headers, media_type="application/json")


def routes() -> list[BaseRoute]:
    return [Route("/linear/graphql", graphql, methods=["POST"])]
