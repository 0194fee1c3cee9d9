"""The worker's delivery loop: claim due webhook deliveries, send each one, record the attempt.

Runs beside the scheduler in every worker process (`compose.open_worker`). Deliveries are
claimed under a lease (`store.webhooks.claim_deliveries`), sent outside any transaction, and
each attempt is recorded fenced by its claim. A worker that dies mid-attempt records nothing:
the delivery is due again when its lease ends, and is sent again (at least once, with the same
`webhook-id`, so the receiver can tell). On shutdown, attempts in flight are abandoned and their
deliveries given back at once.

The loop looks for due deliveries when a run ends in this process (`Notifier.run_ended`: the
deliveries were committed with the terminal state), when an attempt ends, and otherwise every
`RESEARCHDESK_POLL_INTERVAL_SECONDS`: the fallback that finds deliveries other processes wrote
and retries that came due. Each attempt is signed with the endpoint's secret, derived from the
master key then (`webhooks.signing.endpoint_secret`): no secret is read from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.config import Settings
from researchdesk.master_key import MasterKey
from researchdesk.observability.logs import worker_context
from researchdesk.observability.metrics import Metrics
from researchdesk.store import webhooks as store
from researchdesk.store.deployment import MasterKeyMismatch, check_master_key
from researchdesk.store.notify import Notifier
from researchdesk.store.outage import is_database_outage
from researchdesk.webhooks.addresses import Resolver, UnsafeURL, resolve_host, resolve_target
from researchdesk.webhooks.events import payload
from researchdesk.webhooks.schedule import retry_delay
from researchdesk.webhooks.sender import AttemptResult, new_client, refused, send
from researchdesk.webhooks.signing import endpoint_secret, signed_headers

logger = logging.getLogger(__name__)

Sent = tuple[AttemptResult, dict[str, str]]


class DeliveryLoop:
    """Sends this worker's share of webhook deliveries, up to `webhook_concurrency` at once."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        worker_id: str,
        master_key: MasterKey,
        notifier: Notifier | None = None,
        resolve: Resolver = resolve_host,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics or Metrics()
        self._sessions = sessions
        self._master_key = master_key
        self._resolve = resolve
        self.worker_id = worker_id
        self._client: httpx.AsyncClient | None = None
        self._deliveries: dict[str, asyncio.Task[None]] = {}
        self._sends: dict[str, asyncio.Task[Sent]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._refusing = False
        """Whether the last check found this worker's master key not the deployment's."""
        if notifier is not None:
            notifier.on_run_ended(self._run_ended)

    def _run_ended(self, _response_id: str) -> None:
        """A run ended here: its deliveries are due now, not at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Begin claiming and sending in the background."""
        self._client = new_client(self._settings.webhook_timeout_seconds)
        self._loop_task = asyncio.create_task(self._loop(), name="researchdesk-deliveries")

    async def stop(self) -> None:
        """Stop claiming; abandon attempts in flight and give their deliveries back."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        for task in self._sends.values():
            task.cancel()
        if self._deliveries:
            await asyncio.gather(*self._deliveries.values(), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _loop(self) -> None:
        with worker_context(self.worker_id):  # the deliveries' tasks, started here, inherit it
            await self._deliver_until_stopped()

    async def _deliver_until_stopped(self) -> None:
        while not self._stopping:
            try:
                await self._claim_available()
            except Exception as exc:
                # One failure must not stop this worker from delivering: log it and go on.
                if is_database_outage(exc):
                    logger.warning("claiming deliveries failed; will retry", exc_info=True)
                else:
                    logger.exception("claiming deliveries failed unexpectedly; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval_seconds)
            self._wake.clear()

    async def _claim_available(self) -> None:
        free = self._settings.webhook_concurrency - len(self._deliveries)
        if free <= 0 or self._stopping or not await self._key_is_the_deployments():
            return
        async with self._sessions() as session, session.begin():
            claims = await store.claim_deliveries(
                session, self.worker_id, self._settings.webhook_lease_seconds, limit=free
            )
        for claim in claims:
            task = asyncio.create_task(self._deliver(claim), name=f"webhook-{claim.delivery_id}")
            self._deliveries[claim.delivery_id] = task
        if len(claims) == free:
            self._wake.set()  # more may be due: look again as soon as a slot frees

    async def _key_is_the_deployments(self) -> bool:
        """Whether this worker may sign: its master key is the deployment's. Else it sends
        nothing, so that no receiver gets a delivery signed with a secret it was never shown;
        the deliveries wait, due, for a worker with the right key."""
        try:
            async with self._sessions() as session, session.begin():
                await check_master_key(session, self._master_key)
        except MasterKeyMismatch as exc:
            if not self._refusing:
                logger.error("webhooks: not sending any: %s", exc)
            self._refusing = True
            return False
        if self._refusing:
            logger.info("webhooks: this worker's master key is the deployment's again")
        self._refusing = False
        return True

    async def _deliver(self, claim: store.DeliveryClaim) -> None:
        try:
            attempted_at = time.time()
            sending = asyncio.create_task(self._attempt(claim))
            self._sends[claim.delivery_id] = sending
            try:
                # Only the attempt is ever cancelled (by `stop`), never the writes below: a
                # cancellation inside a transaction could leave its connection held.
                await asyncio.wait({sending})
            finally:
                self._sends.pop(claim.delivery_id, None)
            if sending.cancelled():
                async with self._sessions() as session, session.begin():
                    await store.release(session, [claim])
                return
            await self._record(claim, attempted_at, *sending.result())
        except Exception:
            # The lease runs out and the delivery is tried again (at least once, never lost).
            logger.exception("webhook %s: delivery failed unexpectedly", claim.delivery_id)
        finally:
            self._deliveries.pop(claim.delivery_id, None)
            self._wake.set()

    async def _attempt(self, claim: store.DeliveryClaim) -> Sent:
        """Check the URL again, sign, send: every failure is a result, within one timeout."""
        settings = self._settings
        assert self._client is not None
        try:
            async with asyncio.timeout(settings.webhook_timeout_seconds):
                target = await resolve_target(
                    claim.url,
                    allow_private=settings.webhook_allow_private,
                    resolve=self._resolve,
                )
                body = payload(
                    claim.event_id, claim.event_type, claim.event_created_at, claim.response_id
                )
                secret = endpoint_secret(self._master_key, claim.endpoint_id, claim.secret_salt)
                headers = signed_headers(secret, claim.delivery_id, int(time.time()), body)
                return await send(self._client, target, body, headers)
        except UnsafeURL as exc:
            return refused(f"not sent: {exc.message}"), {}
        except TimeoutError:
            return AttemptResult(error="timed out"), {}

    async def _record(
        self,
        claim: store.DeliveryClaim,
        attempted_at: float,
        result: AttemptResult,
        headers: dict[str, str],
    ) -> None:
        settings = self._settings
        retry_in = retry_delay(
            claim.attempts + 1,
            base=settings.webhook_retry_base_seconds,
            cap=settings.webhook_retry_max_seconds,
            status=result.status_code,
            headers=headers,
        )
        async with self._sessions() as session, session.begin():
            recorded = await store.record_attempt(
                session,
                claim,
                result,
                attempted_at=attempted_at,
                retry_in=retry_in,
                window_seconds=settings.webhook_retry_hours * 3600,
            )
        self._metrics.webhook_attempt(
            "lost" if not recorded else "delivered" if result.delivered else "failed"
        )
        if not recorded:
            logger.info("webhook %s: claimed again; attempt not recorded", claim.delivery_id)
        elif not result.delivered:
            logger.info(
                "webhook %s: attempt %d failed (%s)",
                claim.delivery_id,
                claim.attempts + 1,
                result.error,
            )
