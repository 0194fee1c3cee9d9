"""What the worker tests share: a claimed run on a real database."""

from __future__ import annotations

from decimal import Decimal

from researchdesk.pricing.cost import usd_to_micros
from researchdesk.store import runs
from researchdesk.store.responses import insert_response, new_response
from researchdesk.worker.deps import WorkerDeps

MODEL = "moonshotai/Kimi-K2.6:novita"  # $0.6 / $2.5 per million at the fake router


async def claimed_run(deps: WorkerDeps, max_cost_usd: str = "0.5") -> runs.Claim:
    row = new_response(
        model=MODEL,
        max_cost_micros=usd_to_micros(Decimal(max_cost_usd)),
        input_items=[
            {
                "id": "msg_in",
                "type": "message",
                "role": "user",
                "status": "completed",
                "content": [{"type": "input_text", "text": "What are capacity factors?"}],
            }
        ],
    )
    async with deps.sessions() as session, session.begin():
        await insert_response(session, row)
    async with deps.sessions() as session, session.begin():
        claim = await runs.claim_next(
            session,
            "test-worker",
            deps.settings.lease_seconds,
            max_attempts=deps.settings.max_attempts,
        )
    assert claim is not None
    return claim
