"""Start the service under test the way `researchdesk serve` / `worker` do, with two extras.

    python -m bench.serve serve --port P [--no-worker] [--concurrency N] [--count-db FILE]
    python -m bench.serve worker --concurrency N [--count-db FILE]

`--concurrency` sets the embedded worker's concurrency even above the 256 that
`RESEARCHDESK_WORKER_CONCURRENCY` accepts (`worker --concurrency` takes any number).
`--count-db FILE` counts, in this process, every SQLAlchemy transaction commit and rollback and
every pool reset-on-return, and keeps FILE updated with the counts as JSON.
Everything else comes from `RESEARCHDESK_*` variables, as for the real command.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from researchdesk import cli
from researchdesk.config import Settings

COUNTS = {"commit": 0, "rollback": 0, "pool_reset": 0}


def _count(name: str) -> Any:
    def listener(*_args: Any, **_kwargs: Any) -> None:
        COUNTS[name] += 1

    return listener


def count_database_work(path: Path) -> None:
    """Count commits, rollbacks and pool resets of every engine, written to `path` 4× a second."""
    event.listen(Engine, "commit", _count("commit"))
    event.listen(Engine, "rollback", _count("rollback"))
    event.listen(Pool, "reset", _count("pool_reset"))

    def dump() -> None:
        while True:
            path.write_text(json.dumps(COUNTS))
            time.sleep(0.25)

    threading.Thread(target=dump, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["serve", "worker"])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-worker", action="store_true")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--count-db", type=Path, default=None)
    args = parser.parse_args()
    if args.count_db is not None:
        count_database_work(args.count_db)
    if args.role == "worker":
        extra = [] if args.concurrency is None else ["--concurrency", str(args.concurrency)]
        raise SystemExit(cli.main(["--log-level", "warning", "worker", *extra]))

    from researchdesk.api.app import create_app

    settings = Settings()
    if args.concurrency is not None:
        settings.worker_concurrency = args.concurrency  # past the env cap, as `worker` allows
    app = create_app(settings, run_worker=not args.no_worker)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
