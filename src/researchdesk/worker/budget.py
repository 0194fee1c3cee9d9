"""The money guard of one run, persisted: reserve before each LLM call, charge after, in the ledger.

The arithmetic is `pricing.guard`'s; this class reads the price and the money left and writes
the ledger. The money left is the run's own (its `max_cost_usd` less what it committed) or,
when the run's API key has spend limits, what the key's windows have left, whichever is less.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from researchdesk.agent.steps import LLMStep
from researchdesk.pricing.catalog import PriceCatalog
from researchdesk.pricing.cost import call_cost_micros
from researchdesk.pricing.guard import final_plan, output_allowance, research_plan
from researchdesk.pricing.models import ModelRef, Price
from researchdesk.store import ledger, runs, spend
from researchdesk.worker.deps import WorkerDeps

logger = logging.getLogger(__name__)

_RESERVE_TRIES = 8
"""Plans re-made after the key's windows refused a reservation (other runs spent meanwhile)."""


class KeyMoney:
    """What the run's API key may still commit, as last seen.

    Other runs of the key spend meanwhile, so this is only a guess for planning: the database
    checks every reservation against the key's limits, and a refusal makes the run read afresh
    and plan again (`RunBudget.allow`).
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], key_id: str | None) -> None:
        self._sessions = sessions
        self.key_id = key_id
        self._seen: int | None = None
        self._known = False

    @property
    def limited(self) -> bool:
        """Whether the key was last seen with a limit."""
        return self._seen is not None

    async def left(self, *, fresh: bool) -> int | None:
        """The least the key's limited windows have left; None when none is limited (or there
        is no key). Read from the database when `fresh` or not known yet."""
        if self.key_id is None:
            return None
        if fresh or not self._known:
            async with self._sessions() as session, session.begin():
                _, found = await spend.current_windows(session, [self.key_id], time.time())
            self.saw(spend.left_of(found.get(self.key_id, [])))
        return self._seen

    def saw(self, left: int | None) -> None:
        """The database said what the key has left."""
        self._seen = left
        self._known = True

    def spent(self, change: int) -> None:
        """This run committed `change` more micro-USD (less, when negative)."""
        if self._seen is not None:
            self._seen = max(0, self._seen - change)


class RunBudget:
    """Implements the agent's `Budget` for one claimed run, and settles its charges."""

    def __init__(
        self,
        deps: WorkerDeps,
        claim: runs.Claim,
        model: str,
        *,
        door_price: Price | None = None,
        api_key_id: str | None = None,
    ) -> None:
        self._sessions = deps.sessions
        self._metrics = deps.metrics
        self._key = KeyMoney(deps.sessions, api_key_id)
        self._claim = claim
        self._model = model
        self._prices = deps.prices
        self._door_price = door_price
        """The price the run was accepted at, used should the catalog no longer price it."""
        self._open: tuple[int, int] | None = None
        """The unsettled reservation: (ledger call index, micro-USD)."""
        self._money_known: tuple[int, int] | None = None
        """The run's cap and what it has committed, in micro-USD: read once, then kept in step
        with this run's own ledger writes (nobody else writes a claimed run's ledger)."""
        self._priced: tuple[int, ledger.Charge] | None = None
        """The priced charge of the open reservation: (ledger call index, charge)."""
        self._settling = 0
        """What the charge being committed adds to the committed money (charge − reservation)."""

    async def allow(self, *, prompt_bound: int, desired_tokens: int, research: bool) -> int | None:
        """Reserve the worst case of the next call; its `max_tokens`, or None if unaffordable."""
        worst = self._worst(await self._prices.get())
        if worst is None:
            # Only reachable for runs the operator allowed unpriced: no money guard applies.
            reserved = await self._reserve(0, desired_tokens)
            return reserved if isinstance(reserved, int) else None
        plan_for = research_plan if research else final_plan
        fresh = False
        for _ in range(_RESERVE_TRIES):
            plan = plan_for(worst, await self._remaining(fresh), prompt_bound, desired_tokens)
            if plan is None:
                if fresh or not self._key.limited:
                    return None
                fresh = True  # the key's windows as last seen may have got money back since
                continue
            reserved = await self._reserve(plan.reservation_micros, plan.max_tokens)
            if isinstance(reserved, int):
                return reserved
            if not reserved.by_key:
                return None
            fresh = True
        logger.warning("run %s: its key's windows kept refusing", self._claim.response_id)
        return None

    async def output_allowance(self, *, prompt_bound: int) -> int | None:
        """Bytes of tool output the next prompt may take (see `Budget.output_allowance`)."""
        worst = self._worst(await self._prices.get())
        if worst is None:
            return None
        max_cost, remaining = await self._money()
        key_left = await self._key.left(fresh=False)
        if key_left is not None:
            remaining = min(remaining, key_left)
        return output_allowance(worst, max_cost, remaining, prompt_bound)

    def _worst(self, catalog: PriceCatalog) -> Price | None:
        """The run's price: the catalog's for its (pinned) model, else the door's.

        A pinned provider the catalog has stopped pricing (a refetch without its price) still
        bills: reserving at the price the run was accepted at keeps the reservations non-zero.
        """
        worst = catalog.worst_case(self._model)
        return worst if worst is not None else self._door_price

    async def _remaining(self, fresh_key: bool) -> int:
        """Micro-USD the run may still commit: its cap less charges and open reservations, or
        what its key's windows have left if that is less."""
        remaining = (await self._money())[1]
        key_left = await self._key.left(fresh=fresh_key)
        return remaining if key_left is None else min(remaining, key_left)

    async def _money(self) -> tuple[int, int]:
        """The run's cap and what it may still commit, in micro-USD."""
        if self._money_known is None:
            async with self._sessions() as session, session.begin():
                cap = await runs.max_cost_micros(session, self._claim)
                spent = await ledger.spent_micros(session, self._claim.response_id)
            self._money_known = (cap, spent)
        cap, spent = self._money_known
        return cap, cap - spent

    async def _reserve(self, amount: int, max_tokens: int) -> int | ledger.Refused:
        """Reserve `amount`; the call's `max_tokens`, or why the database refused."""
        # The ledger keeps the model and its provider apart (`GET /v1/usage` groups by both).
        ref = (await self._prices.get()).resolve(self._model)
        async with self._sessions() as session, session.begin():
            reserved = await ledger.reserve(
                session,
                self._claim.response_id,
                self._claim.attempt,
                amount_micros=amount,
                model=ref.model,
                provider=ref.provider,
            )
        if isinstance(reserved, ledger.Refused):
            if reserved.by_key:
                self._key.saw(reserved.key_left_micros)
            else:
                self._money_known = None  # read it afresh: the database disagreed
            return reserved
        if self._money_known is not None:
            self._money_known = (self._money_known[0], reserved.spent_micros)
        if self._key.key_id is not None:
            self._key.saw(reserved.key_left_micros)
        self._open = (reserved.call_index, amount)
        self._priced = None
        return max_tokens

    async def price(self, step: LLMStep) -> None:
        """Price the open reservation's call from its usage, before the step's transaction: the
        catalog may be refetched over the network, which no open transaction should wait on."""
        if self._open is None:
            return
        index, reserved = self._open
        charge = _charge(await self._prices.get(), self._model, step, reserved)
        if charge.amount_micros > reserved:
            logger.warning(
                "run %s: call cost %d µUSD over its reservation of %d",
                self._claim.response_id,
                charge.amount_micros,
                reserved,
            )
        self._priced = (index, charge)
        self._settling = charge.amount_micros - reserved

    async def settle(self, session: AsyncSession) -> None:
        """Turn the open reservation into the call's charge (`price`), in the step's transaction."""
        if self._priced is not None:
            index, charge = self._priced
            await ledger.settle(session, self._claim.response_id, index, charge)

    async def refund(self) -> None:
        """Release the open reservation of a call the endpoint refused (nothing was used)."""
        if self._open is None:
            return
        index, reserved = self._open
        async with self._sessions() as session, session.begin():
            await ledger.refund(session, self._claim.response_id, index)
        self._committed(-reserved)
        self._open = None

    async def abandon(self) -> None:
        """The open reservation's call has an unknown outcome: it stays in the ledger, counted."""
        self._open = None

    def settled(self) -> None:
        """The step's transaction committed: no reservation is open any more."""
        if self._priced is not None:
            charge = self._priced[1]
            self._metrics.spent(self._model, charge.provider, charge.amount_micros)
        self._committed(self._settling)
        self._settling = 0
        self._priced = None
        self._open = None

    def _committed(self, change: int) -> None:
        self._key.spent(change)
        if self._money_known is not None:
            cap, spent = self._money_known
            self._money_known = (cap, spent + change)


def _charge(catalog: PriceCatalog, model: str, step: LLMStep, reserved: int) -> ledger.Charge:
    """Our cost from the served provider's price; the reservation when that is unknown."""
    usage = step.usage
    price: Price | None = catalog.price_for(model, step.provider)
    reported = usage.prompt_tokens > 0 or usage.completion_tokens > 0
    computed = (
        call_cost_micros(price, usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens)
        if price is not None and reported
        else None
    )
    return ledger.Charge(
        amount_micros=computed if computed is not None else reserved,
        computed_micros=computed,
        router_estimate_micros=usage.estimated_cost_micros,
        counted="catalog" if computed is not None else "reservation",
        provider=step.provider or ModelRef.parse(model).provider,
        prompt_tokens=usage.prompt_tokens,
        cached_tokens=usage.cached_tokens,
        completion_tokens=usage.completion_tokens,
    )
