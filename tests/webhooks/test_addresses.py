"""The endpoint address rule: http(s) only, and every address the host resolves to public."""

from __future__ import annotations

import ipaddress

import pytest

from researchdesk.webhooks.addresses import (
    Resolver,
    UnsafeURL,
    non_public_kind,
    parse_url,
    resolve_host,
    resolve_target,
)


def resolver(*addresses: str) -> Resolver:
    """A resolver that answers every name with `addresses` (none: the name does not resolve)."""

    async def resolve(host: str, port: int) -> list[str]:
        if not addresses:
            raise OSError("Name or service not known")
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("192.0.2.1", "private"),
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert non_public_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "example.com/hook",
        "http://",
        "http:///path",
        "http://user:pass@example.com/",
        "http://exa mple.com/",
        "http://example.com/\x00",
        " http://example.com/",
        "http://example.com:0/",
        "http://example.com:99999/",
        "http://exa%20mple.com/",
        "http://-bad-.com/",
        "http://" + "a" * 2100 + ".com/",
    ],
)
def test_urls_that_are_not_http_to_a_host_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        parse_url(url)


@pytest.mark.parametrize(
    "url",
    ["https://example.com/hook", "http://hooks.example.com:8080/a?b=c", "https://[2606:4700::1]/"],
)
def test_plain_http_and_https_urls_parse(url: str) -> None:
    assert str(parse_url(url)) == url


async def test_every_resolved_address_must_be_public() -> None:
    # One private address among public ones is enough to refuse: the connection could use it.
    resolve = resolver("8.8.8.8", "10.0.0.7")
    with pytest.raises(UnsafeURL) as refused:
        await resolve_target("https://hooks.example.com/", allow_private=False, resolve=resolve)
    assert refused.value.code == "url_not_allowed"
    assert "10.0.0.7, a private address" in refused.value.message
    target = await resolve_target(
        "https://hooks.example.com/", allow_private=False, resolve=resolver("8.8.8.8")
    )
    assert target.addresses == ("8.8.8.8",)
    assert str(target.pinned("8.8.8.8")) == "https://8.8.8.8/"


async def test_ip_literals_are_checked_without_resolving() -> None:
    unused = resolver()
    with pytest.raises(UnsafeURL, match="loopback"):
        await resolve_target("http://[::1]:8080/", allow_private=False, resolve=unused)
    target = await resolve_target("http://[::1]:8080/", allow_private=True, resolve=unused)
    assert str(target.pinned("::1")) == "http://[::1]:8080/"


async def test_a_host_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(UnsafeURL) as refused:
        await resolve_target("https://nowhere.invalid/", allow_private=True, resolve=resolver())
    assert refused.value.code == "unresolvable_host"


async def test_the_operator_may_allow_private_addresses() -> None:
    target = await resolve_target(
        "http://receiver.internal/", allow_private=True, resolve=resolver("10.0.0.7")
    )
    assert target.addresses == ("10.0.0.7",)


async def test_localhost_resolves_through_the_system_resolver_and_is_refused() -> None:
    assert "127.0.0.1" in await resolve_host("localhost", 80)
    with pytest.raises(UnsafeURL, match="loopback"):
        await resolve_target("http://localhost:8080/", allow_private=False, resolve=resolve_host)
