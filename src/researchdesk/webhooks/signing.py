"""Standard Webhooks signing: `whsec_` secrets and the `webhook-*` headers of each attempt.

The signature is `v1,` and the base64 HMAC-SHA256 of `"{webhook-id}.{webhook-timestamp}.{body}"`
keyed by the secret's base64-decoded bytes, as https://www.standardwebhooks.com/ specifies and
as the `openai` SDK's `client.webhooks.unwrap` verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 (not a secret: the prefix every secret starts with)
SECRET_BYTES = 32
"""Random bytes in a secret (the specification asks for 24 to 64)."""


def new_secret() -> str:
    """A fresh signing secret: `whsec_` and the base64 of `SECRET_BYTES` random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_hint(secret: str) -> str:
    """What the API shows of a secret after creation: its prefix and four characters."""
    return f"{secret[: len(SECRET_PREFIX) + 4]}…"


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one attempt."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one attempt: the same `webhook-id` on every retry, a fresh timestamp
    (receivers refuse old ones) and its signature."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, webhook_id, timestamp, body),
        "content-type": "application/json",
    }
