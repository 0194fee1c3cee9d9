"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from researchdesk.api.deps import SessionDep
from researchdesk.api.errors import error_responses
from researchdesk.errors import DatabaseUnavailable

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz", responses=error_responses(503))
async def readyz(session: SessionDep) -> dict[str, Any]:
    """The database answers, so requests can be accepted."""
    try:
        await session.execute(text("SELECT 1"))
    except Exception as exc:
        raise DatabaseUnavailable("The database is not reachable.") from exc
    return {"status": "ready"}
