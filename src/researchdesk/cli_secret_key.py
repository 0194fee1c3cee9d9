"""`researchdesk secret-key show | adopt`: the master key this host uses and the deployment's.

Every process of a deployment needs the same master key (webhook signing secrets derive from
it), and refuses to start with another (`store.deployment`). `show` compares this host's key
with the deployment's by their ids (an HMAC of a fixed text: they name a key and reveal nothing
of it), so that operators can find the host that differs. `adopt` makes this host's key the
deployment's, for a key changed on purpose: every endpoint's signing secret changes with it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from researchdesk.cli_database import with_session
from researchdesk.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


def add_parser(commands: Any) -> None:
    """Add `secret-key` and its subcommands to the CLI's subparsers."""
    secret_key = commands.add_parser(
        "secret-key", help="compare this host's master key with the deployment's, or adopt it"
    )
    actions = secret_key.add_subparsers(dest="action", required=True)
    actions.add_parser(
        "show", help="this host's key id and the deployment's (exit 1 when they differ)"
    )
    actions.add_parser(
        "adopt", help="make this host's key the deployment's (every webhook secret changes)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `secret-key` subcommand; prints what it found or did."""
    # The database and the key file load only for this command: the client commands stay light.
    from researchdesk.key_file import MasterKeyError, load_master_key, master_key_source
    from researchdesk.store import deployment
    from researchdesk.store.outage import is_database_error

    try:
        master_key = load_master_key(settings)
    except (MasterKeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    mine = deployment.key_id(master_key)
    print(f"this host's master key: id {mine} (from {master_key_source(settings)})")

    async def show(session: AsyncSession) -> dict[str, Any]:
        return {"recorded": await deployment.recorded_key_id(session)}

    async def adopt(session: AsyncSession) -> dict[str, Any]:
        async with session.begin():
            return {"recorded": await deployment.adopt_master_key(session, master_key)}

    try:
        found = asyncio.run(with_session(settings, show if args.action == "show" else adopt))
    except Exception as exc:
        if not is_database_error(exc):
            raise
        print(f"error: the database could not be read (migrated?): {exc!r}", file=sys.stderr)
        return 1
    recorded = found["recorded"]
    if args.action == "adopt":
        if recorded == mine:
            print("the deployment's master key: the same; nothing changed")
            return 0
        print(f"the deployment's master key: now id {mine} (was {recorded or 'none recorded'})")
        if recorded is not None:
            print(
                "Every webhook endpoint's signing secret changed with it: give each receiver "
                "its new one (`researchdesk webhooks rotate-secret ID` shows it)."
            )
        return 0
    if recorded is None:
        print(
            "the deployment's master key: none recorded yet (the first process to start records it)"
        )
        return 0
    if recorded != mine:
        print(f"the deployment's master key: id {recorded}: NOT this host's")
        return 1
    print(f"the deployment's master key: id {recorded}, the same")
    return 0
