"""What an API key may do: its role."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A `user` key sees and acts on its own responses, usage and webhooks; an `admin` key sees
    everyone's and manages keys."""

    USER = "user"
    ADMIN = "admin"
