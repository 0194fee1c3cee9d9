"""The OpenAPI document tells the truth: schemathesis drives the live app from it.

Every documented operation gets generated requests (valid and invalid) against the real app
under uvicorn on loopback, with runs answered by the FakeRouter; no answer may be a 5xx, and
every answer must match what the document declares (status, content type, headers, schema).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from researchdesk.api.app import create_app
from researchdesk.config import Settings
from researchdesk.testing.router import FakeRouter, reply

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def base_url(start_service: Any, make_settings: Any, database_url: str, router: FakeRouter) -> str:
    """The live app on SQLite and on PostgreSQL; every model call gets a short answer."""
    router.set_handler(lambda body: reply("A short answer."))
    return str(start_service(make_settings(database_url, llm_max_retries=0)))


@pytest.fixture
def known_webhook(base_url: str) -> str:
    """A webhook endpoint on a public address. The suite's guard (`tests/conftest.py`) keeps
    deliveries on loopback: those to it are recorded as failed attempts, never sent."""
    created = httpx.post(
        f"{base_url}/v1/webhooks",
        json={"url": "https://8.8.8.8/hooks", "event_types": ["response.completed"]},
        timeout=30,
    )
    assert created.status_code == 200, created.text
    webhook_id: str = created.json()["id"]
    return webhook_id


@pytest.fixture
def known_id(base_url: str, known_webhook: str) -> str:
    """A completed response, with its input items and events, announced to `known_webhook`."""
    created = httpx.post(
        f"{base_url}/v1/responses",
        json={"input": "q", "instructions": "be brief", "metadata": {"k": "v"}},
        timeout=30,
    )
    assert created.json()["status"] == "completed"
    response_id: str = created.json()["id"]
    return response_id


# The document does not depend on settings; the test checks the live server serves this one.
DOCUMENT = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# Valid and invalid requests; `allow_x00`: NUL in any string, which PostgreSQL cannot store.
schema.config.generation.update(
    modes=list(schemathesis.GenerationMode), deterministic=True, allow_x00=True
)


@schema.parametrize()
@settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_app_conforms_to_its_openapi_document(
    case: schemathesis.Case, base_url: str, known_id: str, known_webhook: str
) -> None:
    path = case.path_parameters or {}
    # Random ids only ever reach the 404 branch: half the cases name a real one instead.
    for name, known in (("response_id", known_id), ("webhook_id", known_webhook)):
        if isinstance(path.get(name), str) and len(path[name]) % 2 == 0:
            path[name] = known
    case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)


def test_the_live_server_serves_the_tested_document(base_url: str) -> None:
    assert httpx.get(f"{base_url}/openapi.json").json() == DOCUMENT


def test_the_document_describes_the_create_body_and_errors(base_url: str) -> None:
    document = httpx.get(f"{base_url}/openapi.json").json()
    create = document["paths"]["/v1/responses"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"input", "model", "metadata", "max_cost_usd"} <= set(body_schema["properties"])
    assert body_schema["required"] == ["input"]
    assert set(create["responses"]) == {"200", "400", "401", "404", "409", "413", "429", "503"}
    envelope = document["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["error"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
            for status, declared in operation["responses"].items():
                if status == "304":  # not modified: headers only
                    assert "content" not in declared, (method, path)
                    assert "ETag" in declared["headers"], (method, path)
                elif status != "200":
                    schema_ref = declared["content"]["application/json"]["schema"]["$ref"]
                    assert schema_ref.endswith("/ErrorEnvelope"), (method, path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]
