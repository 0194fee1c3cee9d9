"""LISTEN/NOTIFY carries wake-ups and cancels between processes (here: two notifiers)."""

from __future__ import annotations

import asyncio

from researchdesk.store.pg_notify import PostgresNotifier


async def _connected(notifier: PostgresNotifier) -> None:
    for _ in range(200):
        if notifier._connection is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the notifier never connected")


async def test_work_and_cancels_reach_another_process(postgres_url: str) -> None:
    api, worker = PostgresNotifier(postgres_url), PostgresNotifier(postgres_url)
    await api.start()
    await worker.start()
    try:
        await _connected(api)
        await _connected(worker)
        await worker.wait_for_work(0)  # clear the wake-up every (re)connect sends itself
        cancelled: list[str] = []
        worker.on_cancel(cancelled.append)
        api.work_available()
        assert await worker.wait_for_work(30) is True
        api.cancel_requested("resp_123")
        for _ in range(600):
            if cancelled:
                break
            await asyncio.sleep(0.05)
        assert cancelled == ["resp_123"]
    finally:
        await api.close()
        await worker.close()
