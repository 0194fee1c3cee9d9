"""Signatures as Standard Webhooks defines them, checked by the two libraries receivers use."""

from __future__ import annotations

import base64
import json
import time

import openai
import pytest
import standardwebhooks
from openai.types.webhooks import ResponseCompletedWebhookEvent

from researchdesk.webhooks.events import EventType, new_delivery_id, new_event_id, payload
from researchdesk.webhooks.signing import new_secret, secret_hint, signed_headers

SDK = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")


def test_a_secret_is_whsec_and_the_base64_of_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert new_secret() != secret
    assert secret_hint(secret) == secret[:10] + "…"


def test_both_libraries_verify_a_signed_event_and_read_openais_shape() -> None:
    secret = new_secret()
    body = payload(new_event_id(), EventType.RESPONSE_COMPLETED, 1_700_000_000.7, "resp_1")
    headers = signed_headers(secret, new_delivery_id(), int(time.time()), body)

    event = SDK.webhooks.unwrap(body, headers, secret=secret)
    assert isinstance(event, ResponseCompletedWebhookEvent)
    assert (event.type, event.object, event.data.id, event.created_at) == (
        "response.completed",
        "event",
        "resp_1",
        1_700_000_000,
    )
    assert standardwebhooks.Webhook(secret).verify(body, headers) == json.loads(body)
    assert list(json.loads(body)) == ["id", "object", "type", "created_at", "data"]


@pytest.mark.parametrize("change", ["body", "secret", "webhook-id", "webhook-timestamp"])
def test_any_change_fails_verification_in_both_libraries(change: str) -> None:
    secret = new_secret()
    body = payload(new_event_id(), EventType.RESPONSE_FAILED, time.time(), "resp_1")
    headers = signed_headers(secret, new_delivery_id(), int(time.time()), body)
    if change == "body":
        body = body.replace(b"resp_1", b"resp_2")
    elif change == "secret":
        secret = new_secret()
    elif change == "webhook-id":
        headers["webhook-id"] = new_delivery_id()
    else:
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)

    with pytest.raises(openai.InvalidWebhookSignatureError):
        SDK.webhooks.unwrap(body, headers, secret=secret)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(body, headers)


def test_the_payload_is_the_same_bytes_on_every_attempt() -> None:
    args = (new_event_id(), EventType.RESPONSE_CANCELLED, 1.5, "resp_1")
    assert payload(*args) == payload(*args)
