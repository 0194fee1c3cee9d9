"""A loopback webhook receiver: records every request and answers with scripted statuses.

    with WebhookReceiver() as receiver:
        receiver.script(500, 500, 500)        # then 200 for every later request
        ...  # register receiver.url as an endpoint, let a response end
        [first, *_] = receiver.wait_for(4)
        client.webhooks.unwrap(first.body, first.headers, secret=secret)

A scripted answer may be held (`hold()`): the request then waits, unanswered, until `release()`
or the receiver closes, e.g. to kill the sender in the middle of an attempt.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from researchdesk.testing.server import ThreadedServer


@dataclass(frozen=True)
class Received:
    """One request as it arrived: its headers (lower-case names) and its exact body."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    """What it was answered (0 if it was still held when the receiver closed)."""


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that receives webhooks (any path, POST)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._script: deque[int] = deque()
        self._received: list[Received] = []
        self._arrived = 0
        self.answer_text = "answered {status}"
        """The body of every answer (`{status}` is replaced by the status)."""
        self._answer = threading.Event()
        """Clear while requests are held; set again by `release` or by closing."""
        self._answer.set()
        self._closing = threading.Event()
        app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])
        self._server = ThreadedServer(app)

    @property
    def url(self) -> str:
        """The base URL: post webhooks to any path under it."""
        return self._server.url

    def __enter__(self) -> WebhookReceiver:
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closing.set()
        self._answer.set()
        self._server.stop()

    def script(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, in order; 200 once they are used."""
        with self._lock:
            self._script.extend(statuses)

    def hold(self) -> None:
        """Leave requests unanswered from now on, until `release`."""
        self._answer.clear()

    def release(self) -> None:
        """Answer held requests, and later ones at once."""
        self._answer.set()

    @property
    def received(self) -> list[Received]:
        """Every request answered so far, in order."""
        with self._lock:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Block until `count` requests were answered; they are returned, in order."""
        with self._lock:
            answered = self._lock.wait_for(lambda: len(self._received) >= count, timeout)
            received = list(self._received)
        assert answered, f"WebhookReceiver: {count} request(s) not answered in {timeout}s"
        return received

    def wait_arrived(self, count: int, timeout: float = 20.0) -> None:
        """Block until `count` requests arrived, answered or held."""
        with self._lock:
            arrived = self._lock.wait_for(lambda: self._arrived >= count, timeout)
        assert arrived, f"WebhookReceiver: {count} request(s) did not arrive in {timeout}s"

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self._arrived += 1
            status = self._script.popleft() if self._script else 200
            self._lock.notify_all()
        await anyio.to_thread.run_sync(self._answer.wait)
        answered = 0 if self._closing.is_set() else status
        with self._lock:
            self._received.append(Received(request.url.path, dict(request.headers), body, answered))
            self._lock.notify_all()
        text = self.answer_text.replace("{status}", str(status))
        return PlainTextResponse(text, status_code=status)
