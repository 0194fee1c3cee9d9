"""Secrets derived from the master key, and signatures as Standard Webhooks defines them,
checked by the two libraries receivers use."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

import openai
import pytest
import standardwebhooks
from openai.types.webhooks import ResponseCompletedWebhookEvent

from researchdesk.master_key import MasterKey
from researchdesk.webhooks.events import EventType, new_delivery_id, new_event_id, payload
from researchdesk.webhooks.signing import endpoint_secret, new_salt, secret_hint, signed_headers

SDK = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")


def new_key() -> MasterKey:
    return MasterKey.from_text(secrets.token_urlsafe(32))


def new_secret(key: MasterKey | None = None) -> str:
    """The secret of a new endpoint under `key` (a new master key when none is given)."""
    return endpoint_secret(key or new_key(), f"whep_{secrets.token_hex(16)}", new_salt())


def test_a_secret_is_whsec_and_the_base64_of_32_derived_bytes() -> None:
    key = MasterKey.from_text("k" * 40)
    secret = endpoint_secret(key, "whep_1", "c2FsdA==")
    expected = hmac.new(
        b"k" * 40, b"researchdesk webhook secret v1\x00whep_1\x00c2FsdA==", hashlib.sha256
    ).digest()
    assert secret == "whsec_" + base64.b64encode(expected).decode()
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert secret_hint(secret) == secret[:10] + "…"


def test_the_same_key_id_and_salt_give_the_same_secret_and_any_other_another() -> None:
    text, salt = secrets.token_urlsafe(32), new_salt()
    key = MasterKey.from_text(text)
    secret = endpoint_secret(key, "whep_1", salt)
    assert endpoint_secret(MasterKey.from_text(text), "whep_1", salt) == secret  # elsewhere
    assert endpoint_secret(key, "whep_2", salt) != secret
    assert endpoint_secret(key, "whep_1", new_salt()) != secret
    assert endpoint_secret(new_key(), "whep_1", salt) != secret


def test_a_salt_is_the_base64_of_16_random_bytes() -> None:
    salt = new_salt()
    assert len(base64.b64decode(salt, validate=True)) == 16
    assert new_salt() != salt


def test_a_master_key_shows_nothing_of_itself_and_is_never_short() -> None:
    key = MasterKey.from_text("a-very-secret-master-key-of-some-length")
    assert "secret" not in repr(key)
    assert "secret" not in str(key)
    with pytest.raises(ValueError, match="at least 32"):
        MasterKey.from_text("short")


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


@pytest.mark.parametrize(
    "change", ["body", "secret", "master key", "webhook-id", "webhook-timestamp"]
)
def test_any_change_fails_verification_in_both_libraries(change: str) -> None:
    key, endpoint_id, salt = new_key(), "whep_1", new_salt()
    secret = endpoint_secret(key, endpoint_id, salt)
    body = payload(new_event_id(), EventType.RESPONSE_FAILED, time.time(), "resp_1")
    headers = signed_headers(secret, new_delivery_id(), int(time.time()), body)
    if change == "body":
        body = body.replace(b"resp_1", b"resp_2")
    elif change == "secret":
        secret = endpoint_secret(key, endpoint_id, new_salt())
    elif change == "master key":  # the receiver's secret, signed with another master key's
        headers = signed_headers(
            endpoint_secret(new_key(), endpoint_id, salt),
            headers["webhook-id"],
            int(headers["webhook-timestamp"]),
            body,
        )
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
