"""One connection to a running ResearchDesk: the official `openai` SDK, errors made readable.

The Responses API's own calls go through the SDK's typed methods; the service's extensions
(the list of responses, `/v1/usage`) through the same SDK client's plain `get`, so that every
request shares its authentication, retries and error classes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx2
import openai
from openai.types.responses import ResponseStreamEvent

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "RESEARCHDESK_URL"
KEY_ENV = "RESEARCHDESK_API_KEY"
_OPEN_API_KEY = "none"
"""The bearer sent without a key: an open service takes any; the SDK insists on one."""

Json = dict[str, Any]


class ClientError(Exception):
    """A request the service refused, or could not be made; `str()` is the message to show.

    `retryable`: the same request may succeed later (no connection, a timeout, a 5xx).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class Connection:
    """The SDK client for the service at `url` (its root; `/v1` is added)."""

    def __init__(self, url: str | None = None, api_key: str | None = None) -> None:
        self.url = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get(KEY_ENV)
        self.has_key = bool(key)
        self.sdk = openai.OpenAI(base_url=f"{self.url}/v1", api_key=key or _OPEN_API_KEY)

    def create(
        self,
        question: str,
        *,
        model: str | None = None,
        max_cost_usd: Decimal | None = None,
        previous_response_id: str | None = None,
    ) -> Json:
        """Post a background research request; the response object as created (queued)."""
        extra: Json = {} if max_cost_usd is None else {"max_cost_usd": float(max_cost_usd)}
        with self._errors():
            created = self.sdk.responses.create(
                input=question,
                background=True,
                model=model if model is not None else openai.omit,
                previous_response_id=previous_response_id or openai.omit,
                extra_body=extra or None,
            )
        return created.to_dict()

    def retrieve(self, response_id: str) -> Json:
        """The response object as it is now."""
        with self._errors():
            return self.sdk.responses.retrieve(response_id).to_dict()

    def cancel(self, response_id: str) -> Json:
        """Cancel a queued or running response; the response object after it."""
        with self._errors():
            return self.sdk.responses.cancel(response_id).to_dict()

    def events(self, response_id: str, starting_after: int | None) -> Iterator[Json]:
        """The response's stream events after `starting_after` (all of them with None), as
        they happen, until its terminal event or until the connection ends."""
        with self._errors():
            stream = self.sdk.responses.retrieve(
                response_id,
                stream=True,
                starting_after=openai.omit if starting_after is None else starting_after,
            )
            with stream:
                event: ResponseStreamEvent
                for event in stream:
                    yield event.to_dict()

    def list(self, params: dict[str, str | int]) -> Json:
        """One page of `GET /v1/responses` with these filters."""
        return self._get("/responses", params)

    def usage(self, params: dict[str, str]) -> Json:
        """`GET /v1/usage`: spend by day, model and provider, and each visible key's windows."""
        return self._get("/usage", params)

    def close(self) -> None:
        """Close the SDK's connection pool."""
        self.sdk.close()

    def _get(self, path: str, params: dict[str, Any]) -> Json:
        with self._errors():
            body = self.sdk.get(path, cast_to=object, options={"params": params})
        if not isinstance(body, dict):
            raise ClientError(f"{self.url}/v1{path} answered something that is not an object")
        return body

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn the SDK's exceptions into a `ClientError` that says what happened."""
        try:
            yield
        except openai.APIStatusError as error:
            retryable = error.status_code >= 500
            raise ClientError(self._status_message(error), retryable=retryable) from None
        except (openai.APITimeoutError, httpx2.TimeoutException):
            message = f"the service at {self.url} did not answer in time"
            raise ClientError(message, retryable=True) from None
        except openai.APIConnectionError as error:
            raise ClientError(
                f"cannot reach the service at {self.url} (set --url or {URL_ENV}): "
                f"{error.__cause__ or error}",
                retryable=True,
            ) from None
        except httpx2.TransportError as error:
            # Raised while a stream is read, after the SDK's request had succeeded.
            message = f"the connection to {self.url} broke: {error}"
            raise ClientError(message, retryable=True) from None

    def _status_message(self, error: openai.APIStatusError) -> str:
        """`404 not_found: No response found with id 'resp_x'.`, from the OpenAI envelope."""
        body = error.body
        message = body.get("message") if isinstance(body, dict) else None
        text = str(message) if message else (error.response.text[:300] or error.message)
        label = f"{error.status_code} {error.code}" if error.code else str(error.status_code)
        if error.status_code == 401:
            source = KEY_ENV if self.has_key else f"{KEY_ENV}, which is unset"
            text = f"{text} (the API key comes from {source})"
        return f"{label}: {text}"
