"""`researchdesk ask | responses | usage`: a client for people at a terminal.

These commands talk HTTP to a running service (`--url`, else `RESEARCHDESK_URL`, else
http://127.0.0.1:8000) with the key in `RESEARCHDESK_API_KEY`, never to the database. Progress
goes to stderr (a live block with a spend bar on a terminal, plain lines in a pipe); results
(the answer with its citations, tables, `--json` objects) go to stdout.

Exit codes: 0 the response completed (or the command did what it was asked); 1 the service
refused the request or could not be reached (its message is printed, no traceback); 2 bad
arguments; 3 the response failed, 4 it ended incomplete, 5 it was cancelled; 130 Ctrl-C while
watching (the run goes on; how to watch it again or cancel it is printed).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

from researchdesk.client import render
from researchdesk.client.connection import DEFAULT_URL, KEY_ENV, URL_ENV, ClientError, Connection
from researchdesk.client.watch import display_for, follow

Json = dict[str, Any]
ERROR = 1
EXIT_CODES = {"completed": 0, "failed": 3, "incomplete": 4, "cancelled": 5}
INTERRUPTED = 130


def add_parsers(commands: Any) -> None:
    """Add `ask`, `responses` and `usage` to the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=None, help=f"the service (default: ${URL_ENV}, else {DEFAULT_URL})"
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print the JSON object")

    ask = commands.add_parser(
        "ask",
        parents=[common, as_json],
        help="ask a research question and watch it being answered",
        description=f"Post a question, show its progress, print the answer. Key: ${KEY_ENV}.",
    )
    ask.add_argument("question")
    ask.add_argument("--model", default=None, help="default: the service's")
    ask.add_argument("--max-cost", type=_usd, default=None, help="cap in USD (max_cost_usd)")
    ask.add_argument("--previous", metavar="RESPONSE_ID", help="a follow-up to this response")
    ask.add_argument("--detach", action="store_true", help="print the response id and return")

    responses = commands.add_parser("responses", help="list, show, cancel or watch responses")
    actions = responses.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[common, as_json], help="newest first")
    listing.add_argument("--status", choices=sorted({"queued", "in_progress", *EXIT_CODES}))
    listing.add_argument("--model", default=None)
    listing.add_argument("--slug", default=None)
    listing.add_argument(
        "--metadata", action="append", default=[], metavar="KEY=VALUE", help="repeatable"
    )
    listing.add_argument("--limit", type=int, default=20, help="1 to 100")
    listing.add_argument("--after", metavar="RESPONSE_ID", help="the page after this response")
    for name, help_text in (
        ("show", "one response: its tool calls, answer and citations"),
        ("cancel", "cancel a queued or running response"),
        ("watch", "follow a response's progress until it ends"),
    ):
        action = actions.add_parser(name, parents=[common, as_json], help=help_text)
        action.add_argument("response_id")
    watch = actions.choices["watch"]
    watch.add_argument(
        "--after", type=int, default=None, metavar="N", help="only events after sequence number N"
    )

    usage = commands.add_parser(
        "usage", parents=[common, as_json], help="spend and tokens by day, model and key"
    )
    usage.add_argument("--start-date", metavar="YYYY-MM-DD")
    usage.add_argument("--end-date", metavar="YYYY-MM-DD")


def run(args: argparse.Namespace) -> int:
    """Run one client command; errors from the service are printed, not raised."""
    for library in ("httpx", "httpx2", "openai"):  # each request is not news at a terminal
        logger = logging.getLogger(library)
        logger.setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
    connection = Connection(args.url)
    try:
        if args.command == "ask":
            return _ask(connection, args)
        if args.command == "usage":
            return _usage(connection, args)
        return _responses(connection, args)
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return ERROR
    finally:
        connection.close()


def _ask(connection: Connection, args: argparse.Namespace) -> int:
    created = connection.create(
        args.question,
        model=args.model,
        max_cost_usd=args.max_cost,
        previous_response_id=args.previous,
    )
    if args.detach:
        print(json.dumps(created, indent=2) if args.json else created["id"], flush=True)
        return 0
    return _watch(connection, created["id"], None, as_json=args.json)


def _responses(connection: Connection, args: argparse.Namespace) -> int:
    if args.action == "list":
        page = connection.list(_list_params(args))
        if args.json:
            print(json.dumps(page, indent=2))
        else:
            print(render.response_table(page))
            if page.get("has_more"):
                print(f"more: --after {page.get('last_id')}", file=sys.stderr)
        return 0
    if args.action == "watch":
        return _watch(connection, args.response_id, args.after, as_json=args.json)
    if args.action == "cancel":
        response = connection.cancel(args.response_id)
        print(json.dumps(response, indent=2) if args.json else render.outcome(response))
        return 0
    response = connection.retrieve(args.response_id)
    print(json.dumps(response, indent=2) if args.json else render.show(response))
    return 0


def _watch(connection: Connection, response_id: str, after: int | None, *, as_json: bool) -> int:
    display = display_for(sys.stderr)
    try:
        final = follow(connection, response_id, display, after)
    except KeyboardInterrupt:
        display.close()
        print(
            f"\nStopped watching; {response_id} goes on in the background.\n"
            f"  watch it again: researchdesk responses watch {response_id}\n"
            f"  cancel it:      researchdesk responses cancel {response_id}",
            file=sys.stderr,
        )
        return INTERRUPTED
    finally:
        display.close()
    print(render.outcome(final), file=sys.stderr)
    if as_json:
        print(json.dumps(final, indent=2))
    else:
        text = render.answer(final)
        if text:
            print(text)
    return EXIT_CODES.get(str(final.get("status")), ERROR)


def _usage(connection: Connection, args: argparse.Namespace) -> int:
    params = {
        name: value
        for name, value in (("start_date", args.start_date), ("end_date", args.end_date))
        if value
    }
    usage = connection.usage(params)
    print(json.dumps(usage, indent=2) if args.json else render.usage_table(usage))
    return 0


def _list_params(args: argparse.Namespace) -> dict[str, str | int]:
    params: dict[str, str | int] = {"limit": args.limit}
    for name in ("status", "model", "slug", "after"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    for pair in args.metadata:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ClientError(f"--metadata takes KEY=VALUE, not {pair!r}")
        params[f"metadata[{key}]"] = value
    return params


def _usd(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount in USD: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive amount in USD, not {text}")
    return value
