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

from researchdesk.master_key import MasterKey

SECRET_PREFIX = "whsec_"  # noqa: S105 (not a secret: the prefix every secret starts with)
SALT_BYTES = 16
"""Random bytes in an endpoint's salt, the stored, non-secret half of its secret."""
_DERIVATION = b"researchdesk webhook secret v1\x00"
"""Domain separation: the master key's HMACs for any other use can never be a secret."""


def new_salt() -> str:
    """A fresh salt for an endpoint (base64 of `SALT_BYTES` random bytes): a new salt is a
    new secret."""
    return base64.b64encode(secrets.token_bytes(SALT_BYTES)).decode()


def endpoint_secret(key: MasterKey, endpoint_id: str, salt: str) -> str:
    """An endpoint's signing secret, derived, never stored: `whsec_` and the base64 of
    HMAC-SHA256(master key, "researchdesk webhook secret v1\\0" + endpoint id + "\\0" + salt).

    32 bytes, as Standard Webhooks asks (24 to 64). The same key, id and salt give the same
    secret in every process; another master key gives another secret.
    """
    derived = key.hmac_sha256(_DERIVATION + f"{endpoint_id}\x00{salt}".encode())
    return SECRET_PREFIX + base64.b64encode(derived).decode()


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
