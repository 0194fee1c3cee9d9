"""Which URLs a webhook may be sent to: http(s) to public addresses only, unless allowed.

An endpoint URL is checked when it is registered and again before every attempt, because what
a name resolves to can change (DNS rebinding). Every address the host resolves to must be
public; the attempt then connects to one of exactly those addresses (`Target.pinned`), so the
name is not resolved a second time between the check and the connection. The operator may
allow private, loopback, link-local and other non-public addresses
(`RESEARCHDESK_WEBHOOK_ALLOW_PRIVATE`), e.g. for receivers on the same host or network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolve a host name and port to IP address strings (`resolve_host`; tests pass their own)."""

URL_MAX_CHARS = 2048
_SCHEMES = ("http", "https")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\.?$){_LABEL}(?:\.{_LABEL})*\.?")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
# Checked in this order, so that an address is named by its most telling kind.
_KINDS = (
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_unspecified", "unspecified"),
    ("is_reserved", "reserved"),
    ("is_private", "private"),
)


class UnsafeURL(ValueError):
    """A URL a webhook may not be sent to, and why (`code`: the API error code)."""

    def __init__(self, message: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses its host resolved to, to connect to one of those."""

    url: httpx.URL
    addresses: tuple[str, ...]

    def pinned(self, address: str) -> httpx.URL:
        """The URL with its host replaced by `address` (the `Host` header and TLS name keep
        the original host: see `sender.send`)."""
        return self.url.copy_with(host=address)


def parse_url(url: str) -> httpx.URL:
    """The URL if it is one a webhook may name at all: http(s), a host, no credentials."""
    if len(url) > URL_MAX_CHARS:
        raise UnsafeURL(f"The URL is longer than {URL_MAX_CHARS} characters.")
    if _CONTROL_OR_SPACE.search(url):
        raise UnsafeURL("The URL may not contain spaces or control characters.")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, UnicodeError):
        raise UnsafeURL("The URL is not valid.") from None
    if parsed.scheme not in _SCHEMES:
        raise UnsafeURL("The URL must start with http:// or https://.")
    if parsed.userinfo:
        raise UnsafeURL("The URL may not carry credentials (user:password@).")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise UnsafeURL("The URL's port must be from 1 to 65535.")
    host = _host(parsed)
    if _literal(host) is None and not _HOSTNAME.fullmatch(host):
        raise UnsafeURL("The URL's host is not a valid host name or IP address.")
    return parsed


async def resolve_target(url: str, *, allow_private: bool, resolve: Resolver) -> Target:
    """Check `url` and resolve its host; refuse it if any address is not public (unless
    `allow_private`). Raises `UnsafeURL`; the caller bounds the time it may take."""
    parsed = parse_url(url)
    host = _host(parsed)
    literal = _literal(host)
    if literal is not None:
        found = [str(literal)]
    else:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            found = await resolve(host, port)
        except (OSError, UnicodeError):
            found = []
        if not found:
            raise UnsafeURL(f"The URL's host '{host}' could not be resolved.", "unresolvable_host")
    if not allow_private:
        for address in found:
            kind = non_public_kind(ipaddress.ip_address(address))
            if kind is not None:
                raise UnsafeURL(
                    f"The URL's host '{host}' resolves to {address}, a {kind} address; webhooks "
                    "are sent to public addresses only (the operator can allow others with "
                    "RESEARCHDESK_WEBHOOK_ALLOW_PRIVATE).",
                    "url_not_allowed",
                )
    return Target(parsed, tuple(found))


def non_public_kind(address: IPAddress) -> str | None:
    """Why `address` is not a public one (`"loopback"`, `"private"`, …), or None if it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    for attribute, kind in _KINDS:
        if getattr(address, attribute):
            return kind
    # Shared address space (100.64.0.0/10) and the like: neither private nor global.
    return None if address.is_global else "non-public"


async def resolve_host(host: str, port: int) -> list[str]:
    """The system resolver's addresses for `host`, each once, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _host(url: httpx.URL) -> str:
    """The host as sent on the wire (IDNA-encoded; an IPv6 literal without brackets)."""
    return url.raw_host.decode("ascii").strip("[]")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
