"""`python -m emulator`: serve the emulator with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from emulator.app import create_app
from emulator.demo import DEMO_EMAIL, DEMO_REFRESH_TOKEN


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--demo",
        action="store_true",
        help="seed demo@example.com with two calendars and a Linear workspace",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    app = create_app(demo=args.demo)
    base = f"http://{args.host}:{args.port}"
    if args.demo:
        print(f"demo account: {DEMO_EMAIL}  refresh token: {DEMO_REFRESH_TOKEN}", flush=True)
    print(f"Calendar API endpoint: {base}/calendar/v3/   token URI: {base}/token", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
