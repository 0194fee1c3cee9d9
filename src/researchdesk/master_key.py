"""The master key: the one secret the service keeps, from which per-endpoint secrets derive.

Webhook signing secrets are never stored: `webhooks.signing.endpoint_secret` derives each one
from this key and a stored, non-secret salt. Where the key comes from is `key_file`'s concern;
it is loaded once, by the composition root and the CLI, and passed down.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

MIN_KEY_CHARS = 32
"""The shortest key accepted, from the setting or from a key file."""


@dataclass(frozen=True)
class MasterKey:
    """The key itself, usable only to compute HMACs: it has no repr, so it is never logged."""

    _key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self._key) < MIN_KEY_CHARS:
            raise ValueError(f"a master key needs at least {MIN_KEY_CHARS} bytes")

    def hmac_sha256(self, message: bytes) -> bytes:
        """HMAC-SHA256 of `message` under this key."""
        return hmac.new(self._key, message, hashlib.sha256).digest()

    @classmethod
    def from_text(cls, text: str) -> MasterKey:
        """The key a setting or a key file's text stands for: its UTF-8 bytes."""
        return cls(text.strip().encode())
