"""Entity tags for `GET /v1/responses/{id}` and the `If-None-Match` check (RFC 9110 §13.1.2)."""

from __future__ import annotations

import hashlib

CACHE_HEADERS = {"Cache-Control": "no-cache"}
"""Clients may keep a response, but must revalidate it (with its `ETag`) before each use."""


def strong_tag(response_id: str, body: bytes) -> str:
    """The strong tag of a final response. Its bytes are rendered once and never change (a
    second first reader renders the same bytes), so the tag names the response and their
    length rather than hashing them on every read."""
    digest = hashlib.blake2b(f"{response_id}:{len(body)}".encode(), digest_size=16).hexdigest()
    return f'"{digest}"'


def weak_tag(*parts: object) -> str:
    """A weak tag made of values that change whenever a response in progress changes."""
    digest = hashlib.blake2b(".".join(map(str, parts)).encode(), digest_size=12).hexdigest()
    return f'W/"{digest}"'


def none_match(if_none_match: str | None, tag: str) -> bool:
    """Whether an `If-None-Match` header names `tag` (weak comparison, `*` for any)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = tag.removeprefix("W/")
    return any(
        candidate.strip().removeprefix("W/") == opaque for candidate in if_none_match.split(",")
    )
