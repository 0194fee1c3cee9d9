"""`researchdesk keys create | list | update | revoke`: manage API keys from the shell.

Talks to the database directly (as `migrate` does), through the same validation and rules as
`POST/GET/PATCH/DELETE /v1/keys`, and prints the API's JSON objects; `create` prints the new
key's secret, once. No server and no key are needed: this is how the first admin key is made.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from researchdesk.cli_database import PAGE, Action, all_pages, with_session
from researchdesk.config import Settings
from researchdesk.errors import ResearchDeskError
from researchdesk.roles import Role

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

_NONE = "none"
"""What clears an expiry or a limit in `keys update`."""
_RATES = {
    "--creates-per-minute": "creates per minute",
    "--reads-per-minute": "other Responses API requests per minute",
    "--runs-in-flight": "runs queued or in progress at once",
}
"""The key's own rate limits (`none`: back to the server's setting)."""


def add_parser(commands: Any) -> None:
    """Add `keys` and its subcommands to the CLI's subparsers."""
    keys = commands.add_parser("keys", help="manage API keys (database direct)")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key; prints its secret once")
    update = actions.add_parser("update", help="change a key's name, role, expiry or limits")
    update.add_argument("key_id")
    for action, blank in ((create, None), (update, _NONE)):
        clears = f" ('{blank}' clears it)" if blank else ""
        action.add_argument("--name", default=None)
        action.add_argument("--role", choices=[str(role) for role in Role], default=None)
        action.add_argument(
            "--daily-usd", default=None, help=f"spend limit per UTC day, in USD{clears}"
        )
        action.add_argument(
            "--monthly-usd", default=None, help=f"spend limit per UTC month, in USD{clears}"
        )
        for option, what in _RATES.items():
            action.add_argument(
                option, default=None, help=f"{what}{clears or ' (default: the server setting)'}"
            )
        action.add_argument(
            "--expires-at",
            default=None,
            help=f"ISO 8601 time (UTC unless it says) or Unix seconds{clears}",
        )
    actions.add_parser("list", help="every key (revoked ones too), newest first")
    revoke = actions.add_parser("revoke", help="revoke a key: refused from the next request on")
    revoke.add_argument("key_id")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `keys` subcommand; prints JSON, or the error and returns 1."""
    try:
        result = asyncio.run(with_session(settings, _action(args)))
    except (ResearchDeskError, ValueError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def _action(args: argparse.Namespace) -> Action:
    # The API's rules load only for this command: the CLI's other commands stay light.
    from researchdesk.api import key_service as service
    from researchdesk.api.keys import CreateKeyRequest, UpdateKeyRequest, validate_key

    if args.action == "create":
        create = validate_key(_body(args), CreateKeyRequest)
        return lambda session: service.create_key(session, create)
    if args.action == "update":
        update = validate_key(_body(args), UpdateKeyRequest)
        return lambda session: service.update_key(session, args.key_id, update)
    if args.action == "revoke":
        return lambda session: service.revoke_key(session, args.key_id)
    return _list_all


def _body(args: argparse.Namespace) -> dict[str, Any]:
    """The options given, as the API's request body (`none` as null)."""
    body: dict[str, Any] = {}
    if args.name is not None:
        body["name"] = args.name
    if args.role is not None:
        body["role"] = args.role
    for option, field in (("daily_usd", "daily_usd"), ("monthly_usd", "monthly_usd")):
        value = getattr(args, option)
        if value is not None:
            body[field] = None if value == _NONE else value
    for option in _RATES:
        field = option.removeprefix("--").replace("-", "_")
        value = getattr(args, field)
        if value is not None:
            body[field] = None if value == _NONE else _count(option, value)
    if args.expires_at is not None:
        body["expires_at"] = _timestamp(args.expires_at)
    return body


def _count(option: str, text: str) -> int:
    """A whole number given to `option` (the API checks its range)."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{option} {text!r} is not a whole number (or 'none')") from None


def _timestamp(text: str) -> int | None:
    """`none`, Unix seconds, or an ISO 8601 time (UTC when it names no offset)."""
    if text == _NONE:
        return None
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--expires-at {text!r} is neither an ISO 8601 time nor Unix seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


async def _list_all(session: AsyncSession) -> dict[str, Any]:
    """Every page of the list, as one list object."""
    from researchdesk.api import key_service as service

    return await all_pages(lambda after: service.list_keys(session, after=after, limit=PAGE))
