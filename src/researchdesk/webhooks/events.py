"""The events a webhook endpoint can ask for, and the payload sent for one, as OpenAI sends it."""

from __future__ import annotations

import json
import uuid
from enum import StrEnum

from researchdesk.status import Status


class EventType(StrEnum):
    """An event type an endpoint subscribes to: one per way a background response can end."""

    RESPONSE_COMPLETED = "response.completed"
    RESPONSE_FAILED = "response.failed"
    RESPONSE_INCOMPLETE = "response.incomplete"
    RESPONSE_CANCELLED = "response.cancelled"


_FOR_STATUS = {
    Status.COMPLETED: EventType.RESPONSE_COMPLETED,
    Status.FAILED: EventType.RESPONSE_FAILED,
    Status.INCOMPLETE: EventType.RESPONSE_INCOMPLETE,
    Status.CANCELLED: EventType.RESPONSE_CANCELLED,
}


def event_for(status: Status) -> EventType:
    """The event a response's terminal `status` sends."""
    if not status.terminal:
        raise ValueError(f"a {status} response sends no webhook event")
    return _FOR_STATUS[status]


def new_event_id() -> str:
    """The payload's `id` (`evt_…`): one per event, shared by every endpoint it goes to."""
    return f"evt_{uuid.uuid4().hex}"


def new_delivery_id() -> str:
    """The `webhook-id` header (`wh_…`): one per event and endpoint, the same on every retry."""
    return f"wh_{uuid.uuid4().hex}"


def payload(event_id: str, event_type: str, created_at: float, response_id: str) -> bytes:
    """The body OpenAI sends: `{id, object: "event", type, created_at, data: {id}}`.

    Rendered from the stored columns on each attempt, identically: a retry sends the same bytes.
    """
    body = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created_at": int(created_at),
        "data": {"id": response_id},
    }
    return json.dumps(body, separators=(",", ":")).encode()
