"""One webhook attempt over HTTP: POST the signed body to a checked address, keep an excerpt.

Redirects are never followed (a 3xx is a failed attempt: following one would reach a URL that
was never checked), proxies from the environment are never used (they would reach the URL
instead of the checked address), and only the first `EXCERPT_CHARS` of the answer are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from researchdesk.webhooks.addresses import Target

EXCERPT_CHARS = 256
_READ_BYTES = 4 * EXCERPT_CHARS  # UTF-8 takes at most four bytes a character
ERROR_MAX_CHARS = 512
_AGENT = "ResearchDesk-Webhooks/1"


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt got: a status code and the start of the answer, or an error."""

    status_code: int | None = None
    error: str | None = None
    excerpt: str | None = None

    @property
    def delivered(self) -> bool:
        """A 2xx answer ends the delivery."""
        return self.status_code is not None and 200 <= self.status_code < 300


def refused(reason: str) -> AttemptResult:
    """An attempt that was not sent (the URL failed its check), as a failed attempt."""
    return AttemptResult(error=reason[:ERROR_MAX_CHARS])


def new_client(timeout: float) -> httpx.AsyncClient:
    """The client the delivery loop sends with: no redirects, no proxies, no pooled
    connections (a connection opened for one host name must not carry another's request)."""
    return httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


async def send(
    client: httpx.AsyncClient, target: Target, body: bytes, headers: dict[str, str]
) -> tuple[AttemptResult, dict[str, str]]:
    """POST `body` to the first of the target's addresses that accepts a connection.

    Returns the result and the answer's headers (for a `Retry-After`), never raises for an
    HTTP or network failure: every failure is a result to record.
    """
    url = target.url
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    request_headers = {**headers, "host": url.netloc.decode("ascii"), "user-agent": _AGENT}
    error = "no address to connect to"
    for address in target.addresses:
        request = client.build_request(
            "POST",
            target.pinned(address),
            content=body,
            headers=request_headers,
            extensions=extensions,
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            error = f"could not connect to {address}: {exc}"
            continue  # the host's next address may answer
        except httpx.TimeoutException:
            return AttemptResult(error=f"timed out ({address})"), {}
        except httpx.HTTPError as exc:
            return AttemptResult(error=_error_text(exc)), {}
        try:
            excerpt = await _excerpt(response)
        except httpx.HTTPError as exc:
            return AttemptResult(status_code=response.status_code, error=_error_text(exc)), {}
        finally:
            await response.aclose()
        result = AttemptResult(
            status_code=response.status_code,
            error=_status_error(response.status_code),
            excerpt=excerpt,
        )
        return result, dict(response.headers)
    return AttemptResult(error=error[:ERROR_MAX_CHARS]), {}


async def _excerpt(response: httpx.Response) -> str:
    """The start of the answer as text: at most `EXCERPT_CHARS`, storable on any database."""
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= _READ_BYTES:
            break
    text = data[:_READ_BYTES].decode("utf-8", errors="replace")[:EXCERPT_CHARS]
    return text.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL


def _status_error(status: int) -> str | None:
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed"
    return f"HTTP {status}"


def _error_text(exc: httpx.HTTPError) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:ERROR_MAX_CHARS]
