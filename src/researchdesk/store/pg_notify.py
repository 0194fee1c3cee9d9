"""Wake-ups across processes through PostgreSQL LISTEN/NOTIFY (polling covers any loss), and the
factory that picks the notifier a database needs."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from sqlalchemy.engine import make_url

from researchdesk.store.notify import Notifier

logger = logging.getLogger(__name__)

CHANNEL = "researchdesk"
_PING_SECONDS = 5.0
_RECONNECT_SECONDS = 1.0


def asyncpg_dsn(database_url: str) -> str:
    """The plain libpq-style DSN asyncpg takes, from a SQLAlchemy URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresNotifier(Notifier):
    """A Notifier whose hints also reach every other API and worker process."""

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self._dsn = asyncpg_dsn(database_url)
        self._connection: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen in the background, reconnecting after the database comes back."""
        self._listener = asyncio.create_task(self._listen_forever(), name="researchdesk-listen")

    async def close(self) -> None:
        """Stop listening and close the connection."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for task in list(self._sends):
            task.cancel()

    def work_available(self) -> None:
        """Wake local workers and every other process's."""
        super().work_available()
        self._publish("work:")

    def cancel_requested(self, response_id: str) -> None:
        """Stop the run wherever it is running."""
        super().cancel_requested(response_id)
        self._publish(f"cancel:{response_id}")

    def changed(self, response_id: str) -> None:
        """Wake readers (streams, synchronous waits) in every process."""
        super().changed(response_id)
        self._publish(f"changed:{response_id}")

    def _publish(self, payload: str) -> None:
        if self._connection is None:
            return
        task = asyncio.get_running_loop().create_task(self._send(payload))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, payload: str) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            async with self._lock:
                await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            logger.debug("NOTIFY failed; peers fall back to polling", exc_info=True)

    def _on_message(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        kind, _, response_id = str(payload).partition(":")
        if kind == "work":
            Notifier.work_available(self)
        elif kind == "cancel":
            Notifier.cancel_requested(self, response_id)
        elif kind == "changed":
            Notifier.changed(self, response_id)

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                logger.info("LISTEN connection lost; reconnecting", exc_info=True)
            # Notifications sent while we were away are gone: look for work once.
            Notifier.work_available(self)
            await asyncio.sleep(_RECONNECT_SECONDS)

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(self._dsn, timeout=10)
        try:
            await connection.add_listener(CHANNEL, self._on_message)
            self._connection = connection
            while True:
                await asyncio.sleep(_PING_SECONDS)
                async with self._lock:
                    await asyncio.wait_for(connection.execute("SELECT 1"), _PING_SECONDS)
        finally:
            self._connection = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2)


def create_notifier(database_url: str) -> Notifier:
    """In-process hints for SQLite; LISTEN/NOTIFY across processes for PostgreSQL."""
    if make_url(database_url).get_backend_name() == "postgresql":
        return PostgresNotifier(database_url)
    return Notifier()
