"""`researchdesk webhooks create | list | delete | rotate-secret`: manage webhook endpoints.

Talks to the database directly (as `migrate` does), through the same validation and rules as
`POST/GET/DELETE /v1/webhooks`; prints the API's JSON objects. With API keys configured (in the
environment or the database), each command acts for one key (`--key`), which owns the
endpoints it creates, as over HTTP. Secrets derive from the master key the server uses
(`RESEARCHDESK_SECRET_KEY`, or the same key file), loaded here once per command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from researchdesk.cli_database import PAGE, Action, all_pages, with_session
from researchdesk.config import Settings
from researchdesk.errors import ResearchDeskError
from researchdesk.master_key import MasterKey
from researchdesk.webhooks.events import EventType

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


def add_parser(commands: Any) -> None:
    """Add `webhooks` and its subcommands to the CLI's subparsers."""
    webhooks = commands.add_parser("webhooks", help="manage webhook endpoints (database direct)")
    actions = webhooks.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="register an endpoint; prints its secret once")
    create.add_argument("--url", required=True)
    create.add_argument(
        "--event",
        dest="events",
        action="append",
        choices=[str(event) for event in EventType],
        help="an event type to send (repeat it; default: all four)",
    )
    create.add_argument("--name", default=None)
    actions.add_parser("list", help="the endpoints, newest first")
    delete = actions.add_parser("delete", help="delete an endpoint and its deliveries")
    delete.add_argument("webhook_id")
    rotate = actions.add_parser(
        "rotate-secret", help="give an endpoint a new secret; prints it once (the old one stops)"
    )
    rotate.add_argument("webhook_id")
    for action in actions.choices.values():
        action.add_argument(
            "--key", default=None, help="the API key the endpoints belong to (when keys are set)"
        )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `webhooks` subcommand; prints JSON, or the error and returns 1."""
    # The database and the key file load only for this command: the client commands stay light.
    from researchdesk.key_file import MasterKeyError, load_master_key

    try:
        master_key = load_master_key(settings)

        async def act(session: AsyncSession) -> dict[str, Any]:
            owner = await _owner(session, args.key, settings)
            return await _action(args, settings, master_key, owner)(session)

        result = asyncio.run(with_session(settings, act))
    except (ResearchDeskError, MasterKeyError, ValueError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


async def _owner(session: AsyncSession, key: str | None, settings: Settings) -> str | None:
    """The owner `key` stands for, checked against the environment's keys and the database's
    (a revoked or expired key stands for nobody)."""
    from researchdesk.store import keys

    configured = settings.api_key_list() + settings.admin_api_key_list()
    if not configured and not await keys.any_keys(session):
        if key is not None:
            raise ValueError("no API keys are configured (environment or database): drop --key")
        return None
    if key is None:
        raise ValueError("API keys are configured: pass --key KEY, the key the endpoints serve")
    if key in configured:
        return keys.key_hash(key)
    record = await keys.find_by_hash(session, keys.key_hash(key))
    if record is None or not record.usable_at(time.time()):
        raise ValueError("--key is not one of the API keys (environment or database)")
    return record.hash


def _action(
    args: argparse.Namespace, settings: Settings, master_key: MasterKey, owner: str | None
) -> Action:
    # The API's rules load only for this command: the CLI's other commands stay light.
    from researchdesk.api import webhook_service as service
    from researchdesk.api.webhooks import validate_webhook

    if args.action == "create":
        body: dict[str, Any] = {
            "url": args.url,
            "event_types": args.events or [str(event) for event in EventType],
        }
        if args.name is not None:
            body["name"] = args.name
        request = validate_webhook(body)
        return lambda session: service.create_endpoint(
            settings, master_key, session, owner, request
        )
    if args.action == "delete":
        return lambda session: service.delete_endpoint(session, owner, args.webhook_id)
    if args.action == "rotate-secret":
        return lambda session: service.rotate_secret(master_key, session, owner, args.webhook_id)
    return lambda session: _list_all(master_key, session, owner)


async def _list_all(
    master_key: MasterKey, session: AsyncSession, owner: str | None
) -> dict[str, Any]:
    """Every page of the list, as one list object."""
    from researchdesk.api import webhook_service as service

    return await all_pages(
        lambda after: service.list_endpoints(master_key, session, owner, after=after, limit=PAGE)
    )
