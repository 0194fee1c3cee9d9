"""The `researchdesk` command: serve, worker, migrate, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import uvicorn

from researchdesk.config import Settings
from researchdesk.store.db import create_engine
from researchdesk.store.migrate import upgrade_to_head


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = argparse.ArgumentParser(prog="researchdesk", description=__doc__)
    parser.add_argument("--log-level", default="info")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (and, by default, a worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="API only (scale-out)")

    worker = commands.add_parser("worker", help="run workers only (scale-out)")
    worker.add_argument("--concurrency", type=int, default=None, help="runs at once")

    commands.add_parser("migrate", help="apply database migrations and exit")

    demo = commands.add_parser("demo", help="an offline demo with a scripted model")
    demo.add_argument("--port", type=int, default=0)

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "serve":
        return _serve(Settings(), args.host, args.port, run_worker=not args.no_worker)
    if args.command == "worker":
        from researchdesk.worker.main import run_worker  # keeps `migrate` light

        asyncio.run(run_worker(Settings(), args.concurrency))
        return 0
    if args.command == "migrate":
        asyncio.run(_migrate(Settings()))
        print("migrations applied")
        return 0
    if args.command == "demo":
        from researchdesk.demo import run_demo  # the test servers load only for the demo

        return run_demo(args.port)
    parser.error(f"unknown command {args.command}")


def _serve(settings: Settings, host: str, port: int, *, run_worker: bool) -> int:
    from researchdesk.api.app import create_app  # keeps `migrate` light

    app = create_app(settings, run_worker=run_worker)
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=10)
    return 0


async def _migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
