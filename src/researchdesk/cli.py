"""The `researchdesk` command: serve, worker, migrate, keys, webhooks, demo; and the client
commands ask, responses, usage."""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import os
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING, Any

from researchdesk import cli_client, cli_keys, cli_secret_key, cli_webhooks
from researchdesk.config import MAX_WORKER_CONCURRENCY, Settings
from researchdesk.observability.logs import logging_config, secrets_of
from researchdesk.observability.metrics import SHARED_DIR_ENV

if TYPE_CHECKING:
    from fastapi import FastAPI

# The server's heavy imports (uvicorn, SQLAlchemy, Alembic) load in the commands that use them,
# so that the client commands (`ask`, `responses`, `usage`) start quickly.

# How `serve --workers N` tells its API processes whether to run a worker too.
_NO_WORKER_ENV = "RESEARCHDESK_SERVE_NO_WORKER"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = argparse.ArgumentParser(prog="researchdesk", description=__doc__)
    parser.add_argument("--log-level", default="info")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (and, by default, a worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="API only (scale-out)")
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="API processes (PostgreSQL only); each also runs a worker unless --no-worker",
    )

    worker = commands.add_parser("worker", help="run workers only (scale-out)")
    worker.add_argument(
        "--concurrency",
        type=_concurrency,
        default=None,
        help=f"runs at once, 1 to {MAX_WORKER_CONCURRENCY} "
        "(default: RESEARCHDESK_WORKER_CONCURRENCY)",
    )

    commands.add_parser("migrate", help="apply database migrations and exit")

    cli_keys.add_parser(commands)
    cli_webhooks.add_parser(commands)
    cli_secret_key.add_parser(commands)
    cli_client.add_parsers(commands)

    demo = commands.add_parser("demo", help="an offline demo with a scripted model")
    demo.add_argument("--port", type=int, default=0)
    demo.add_argument(
        "--serve", action="store_true", help="keep the demo service up (until Ctrl-C) for clients"
    )
    demo.add_argument(
        "--api-key",
        action="append",
        default=[],
        help="with --serve: a key the API takes (repeatable); with none the API is open",
    )
    demo.add_argument(
        "--pace", type=float, default=None, help="with --serve: seconds per model call (0.5)"
    )

    args = parser.parse_args(argv)
    if args.command not in ("serve", "worker"):
        logging.basicConfig(
            level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    if args.command == "serve":
        settings = Settings()
        from researchdesk.store.db import is_sqlite

        if args.workers > 1 and is_sqlite(settings.database_url):
            parser.error(
                "--workers needs PostgreSQL: SQLite takes one writer at a time, queued within "
                "one process; run one `serve` (and `worker` processes if need be)"
            )
        return _serve(
            settings,
            args.host,
            args.port,
            run_worker=not args.no_worker,
            workers=args.workers,
            log_config=_configure_logging(settings, args.log_level),
        )
    if args.command == "worker":
        from researchdesk.store.deployment import MasterKeyMismatch
        from researchdesk.worker.main import run_worker  # keeps `migrate` light

        settings = Settings()
        _configure_logging(settings, args.log_level)
        try:
            asyncio.run(run_worker(settings, args.concurrency))
        except MasterKeyMismatch:
            return 1  # logged, in one line, as it was found
        return 0
    if args.command == "migrate":
        asyncio.run(_migrate(Settings()))
        print("migrations applied")
        return 0
    if args.command == "keys":
        return cli_keys.run(args, Settings())
    if args.command == "webhooks":
        return cli_webhooks.run(args, Settings())
    if args.command == "secret-key":
        return cli_secret_key.run(args, Settings())
    if args.command in ("ask", "responses", "usage"):
        return cli_client.run(args)
    if args.command == "demo":
        from researchdesk import demo as offline  # the test servers load only for the demo

        if args.serve:
            pace = offline.DEFAULT_PACE_SECONDS if args.pace is None else args.pace
            return offline.serve_demo(args.port, args.api_key, pace)
        return offline.run_demo(args.port)
    parser.error(f"unknown command {args.command}")


def _configure_logging(settings: Settings, level: str) -> dict[str, Any]:
    """Apply the service's logging (`RESEARCHDESK_LOG_FORMAT`); its `dictConfig`, which uvicorn
    applies again in each process it starts."""
    config = logging_config(settings.log_format, level, secrets_of(settings))
    logging.config.dictConfig(config)
    return config


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _concurrency(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_WORKER_CONCURRENCY:
        raise argparse.ArgumentTypeError(
            f"must be from 1 to {MAX_WORKER_CONCURRENCY} "
            f"(the limit of RESEARCHDESK_WORKER_CONCURRENCY too), not {value}"
        )
    return value


def _serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    run_worker: bool,
    workers: int,
    log_config: dict[str, Any],
) -> int:
    import uvicorn

    if workers == 1:
        from researchdesk.api.app import create_app  # keeps `migrate` light

        app = create_app(settings, run_worker=run_worker)
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            log_config=log_config,
            timeout_graceful_shutdown=10,
        )
        return 0
    # Migrate once, here, before the API processes start (they do not migrate).
    asyncio.run(_migrate(settings))
    os.environ[_NO_WORKER_ENV] = "0" if run_worker else "1"
    # The processes' metrics go to files in one fresh folder, so that a scrape, whichever
    # process answers it, shows the sum of all of them.
    shared = os.environ[SHARED_DIR_ENV] = tempfile.mkdtemp(prefix="researchdesk-metrics-")
    try:
        uvicorn.run(
            "researchdesk.cli:app_factory",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="info",
            log_config=log_config,
            timeout_graceful_shutdown=10,
        )
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    return 0


def app_factory() -> FastAPI:
    """The app of one of `serve --workers N`'s processes (uvicorn imports it by name)."""
    from researchdesk.api.app import create_app

    run_worker = os.environ.get(_NO_WORKER_ENV) != "1"
    return create_app(Settings(), run_worker=run_worker, migrate=False)


async def _migrate(settings: Settings) -> None:
    from researchdesk.store.db import create_engine
    from researchdesk.store.migrate import upgrade_to_head

    engine = create_engine(settings.database_url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
