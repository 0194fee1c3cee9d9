"""Receive ResearchDesk's webhooks: verify each signature, drop repeats, fetch the response.

On start it listens on 127.0.0.1 and registers itself with the service (`client.webhooks.create`,
the official `openai` SDK) for the four events a background response ends with; the signing
secret comes back once, in that answer. Each delivery is checked with `client.webhooks.unwrap`
(Standard Webhooks: an HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, at most
5 minutes old; `standardwebhooks.Webhook(secret).verify(body, headers)` does the same), answered
200 at once, and the response it names is fetched. On exit it deletes its endpoint.

    export RESEARCHDESK_URL=http://127.0.0.1:8000 RESEARCHDESK_API_KEY=rd_...  # the key if needed
    python examples/webhook_receiver.py [--port 8900] [--max-events N] [--public-url URL]

The service refuses to send to loopback and private addresses unless it runs with
RESEARCHDESK_WEBHOOK_ALLOW_PRIVATE=true (`researchdesk demo --serve` does); in production,
pass the address the service reaches this receiver at as --public-url.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from openai import InvalidWebhookSignatureError, OpenAI
from openai.types.webhooks import (
    ResponseCancelledWebhookEvent,
    ResponseCompletedWebhookEvent,
    ResponseFailedWebhookEvent,
    ResponseIncompleteWebhookEvent,
)

RESPONSE_EVENTS = (
    ResponseCompletedWebhookEvent,
    ResponseFailedWebhookEvent,
    ResponseIncompleteWebhookEvent,
    ResponseCancelledWebhookEvent,
)


class Receiver(ThreadingHTTPServer):
    """The HTTP server, with what its handlers share: the SDK client, the secret, the ids seen."""

    def __init__(self, port: int, client: OpenAI, max_events: int | None) -> None:
        super().__init__(("127.0.0.1", port), Delivery)
        self.client = client
        self.secret = ""
        self.max_events = max_events
        self.seen: set[str] = set()
        self.lock = threading.Lock()


class Delivery(BaseHTTPRequestHandler):
    """One POSTed delivery."""

    server: Receiver

    def do_POST(self) -> None:
        """Verify, answer, then act on the event (once per `webhook-id`)."""
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            # The exact bytes as received: parsing first would change what was signed.
            event = self.server.client.webhooks.unwrap(body, headers, secret=self.server.secret)
        except InvalidWebhookSignatureError:
            print(f"rejected: bad signature on {headers.get('webhook-id')}", flush=True)
            self._answer(400)
            return
        self._answer(200)  # answer fast; a slow answer is a failed attempt, and a retry
        webhook_id = headers["webhook-id"]
        with self.server.lock:
            repeat = webhook_id in self.server.seen
            self.server.seen.add(webhook_id)
        if repeat:
            print(f"repeat of {webhook_id}, dropped", flush=True)
            return
        if not isinstance(event, RESPONSE_EVENTS):
            print(f"ignored {event.type} (webhook-id {webhook_id})", flush=True)
            return
        print(f"verified {event.type} for {event.data.id} (webhook-id {webhook_id})", flush=True)
        response = self.server.client.responses.retrieve(event.data.id)
        spent = (response.usage.model_extra or {}).get("total_usd") if response.usage else None
        print(f"  {response.id}: {response.status}, spent {spent} USD", flush=True)
        with self.server.lock:
            if (
                self.server.max_events is not None
                and len(self.server.seen) >= self.server.max_events
            ):
                threading.Thread(target=self.server.shutdown).start()

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the lines printed above say what happened."""


def main() -> int:
    """Listen, register, serve until Ctrl-C (or --max-events), unregister."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8900, help="0: any free port")
    parser.add_argument("--max-events", type=int, default=None, help="exit after N events")
    parser.add_argument("--public-url", help="the URL to register (default: this receiver's)")
    args = parser.parse_args()

    url = os.environ.get("RESEARCHDESK_URL", "http://127.0.0.1:8000").rstrip("/")
    client = OpenAI(base_url=f"{url}/v1", api_key=os.environ.get("RESEARCHDESK_API_KEY") or "none")
    server = Receiver(args.port, client, args.max_events)
    here = f"http://127.0.0.1:{server.server_address[1]}/hook"
    endpoint = client.webhooks.create(
        url=args.public_url or here,
        event_types=[
            "response.completed",
            "response.failed",
            "response.incomplete",
            "response.cancelled",
        ],
        name="webhook_receiver example",
    )
    server.secret = endpoint.signing_secret
    events = ", ".join(endpoint.event_types)
    print(f"listening on {here}; registered {endpoint.id} for {events}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        client.webhooks.delete(endpoint.id)
        print(f"deleted {endpoint.id}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
