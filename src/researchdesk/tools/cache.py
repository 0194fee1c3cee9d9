"""An in-process ToolCache, for tests and single-run use; the store has the shared one."""

from __future__ import annotations

import time


class MemoryCache:
    """A dict with expiry times, implementing `ToolCache`."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, str]] = {}

    async def get(self, key: str) -> str | None:
        """The value under `key` unless it expired."""
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    async def put(self, key: str, value: str, ttl_seconds: float) -> None:
        """Keep `value` for `ttl_seconds`."""
        self._items[key] = (time.monotonic() + ttl_seconds, value)
