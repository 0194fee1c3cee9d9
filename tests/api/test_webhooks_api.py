"""The webhook endpoint routes through the real server: per key, validated, private addresses
refused unless allowed; the `openai` SDK's `client.webhooks` methods work against them."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from researchdesk.api.webhooks import EventTypeName
from researchdesk.webhooks.events import EventType
from tests.api.test_hostile_input import envelope

ALL = [str(event) for event in EventType]
PUBLIC = "https://8.8.8.8/hooks"
"""A public address: accepted, and never sent to (no response ends in these tests; and the
test suite's guard refuses any attempt off loopback)."""
KEYS = {"k1": {"authorization": "Bearer k1"}, "k2": {"authorization": "Bearer k2"}}


@pytest.fixture
def service_database(database_url: str) -> str:
    """The real app under uvicorn on SQLite and on PostgreSQL."""
    return database_url


def create(
    client: httpx.Client, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    return client.post("/v1/webhooks", json=body, headers=headers)


def test_the_event_types_of_the_schema_are_the_services() -> None:
    assert set(EventTypeName.__args__) == set(EventType)  # type: ignore[attr-defined]


def test_register_read_list_and_delete(service: httpx.Client) -> None:
    created = create(service, {"url": PUBLIC, "event_types": ALL, "name": "dashboard"})
    assert created.status_code == 200, created.text
    hook = created.json()
    secret = hook.pop("signing_secret")
    assert secret.startswith("whsec_")
    assert hook["id"].startswith("whep_")
    assert (hook["object"], hook["url"], hook["event_types"], hook["name"]) == (
        "webhook_endpoint",
        PUBLIC,
        ALL,
        "dashboard",
    )
    assert hook["signing_secret_hint"] == secret[:10] + "…"

    # The secret is shown once: never by a read or a list.
    assert service.get(f"/v1/webhooks/{hook['id']}").json() == hook
    page = service.get("/v1/webhooks").json()
    assert page == {
        "object": "list",
        "data": [hook],
        "first_id": hook["id"],
        "last_id": hook["id"],
        "has_more": False,
    }
    assert secret not in service.get("/v1/webhooks").text
    assert service.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["data"] == []

    deleted = service.delete(f"/v1/webhooks/{hook['id']}")
    assert deleted.json() == {
        "id": hook["id"],
        "object": "webhook_endpoint.deleted",
        "deleted": True,
    }
    assert service.get(f"/v1/webhooks/{hook['id']}").status_code == 404
    assert service.delete(f"/v1/webhooks/{hook['id']}").status_code == 404


def test_the_list_pages_newest_first(service: httpx.Client) -> None:
    ids = [create(service, {"url": PUBLIC, "event_types": ALL}).json()["id"] for _ in range(3)]
    first = service.get("/v1/webhooks", params={"limit": 2}).json()
    assert [hook["id"] for hook in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    rest = service.get("/v1/webhooks", params={"limit": 2, "after": first["last_id"]}).json()
    assert [hook["id"] for hook in rest["data"]] == [ids[0]]
    assert rest["has_more"] is False
    unknown = service.get("/v1/webhooks", params={"after": "whep_nope"})
    assert (unknown.status_code, envelope(unknown)["param"]) == (400, "after")


def test_duplicate_event_types_are_kept_once(service: httpx.Client) -> None:
    body = {"url": PUBLIC, "event_types": ["response.failed", "response.failed"]}
    assert create(service, body).json()["event_types"] == ["response.failed"]


def test_each_key_sees_and_deletes_only_its_own_endpoints(client_for: Any) -> None:
    client = client_for(api_keys="k1,k2")
    mine = create(client, {"url": PUBLIC, "event_types": ALL}, KEYS["k1"]).json()["id"]
    theirs = create(client, {"url": PUBLIC, "event_types": ALL}, KEYS["k2"]).json()["id"]

    listed = client.get("/v1/webhooks", headers=KEYS["k1"]).json()["data"]
    assert [hook["id"] for hook in listed] == [mine]
    for method, path in [
        ("GET", f"/v1/webhooks/{theirs}"),
        ("GET", f"/v1/webhooks/{theirs}/deliveries"),
        ("DELETE", f"/v1/webhooks/{theirs}"),
    ]:
        response = client.request(method, path, headers=KEYS["k1"])
        assert response.status_code == 404, (method, path)
        assert envelope(response)["code"] == "not_found"
    assert client.get(f"/v1/webhooks/{theirs}", headers=KEYS["k2"]).status_code == 200
    assert client.get("/v1/webhooks").status_code == 401
    assert create(client, {"url": PUBLIC, "event_types": ALL}).status_code == 401


NON_PUBLIC = [
    "http://127.0.0.1:8080/hook",
    "http://127.1.2.3/",
    "http://10.0.0.1/hook",
    "http://172.16.5.4/",
    "http://192.168.0.10/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:8080/hook",
    "http://[::ffff:127.0.0.1]/",
    "http://[fe80::1]/",
    "http://[fd12::1]/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://100.64.0.1/",
    "http://localhost:8080/hook",
    "http://2130706433/",  # 127.0.0.1 as one number: resolved, then refused
]


def test_an_endpoint_on_a_non_public_address_is_refused(service: httpx.Client) -> None:
    for url in NON_PUBLIC:
        response = create(service, {"url": url, "event_types": ALL})
        assert response.status_code == 400, (url, response.text)
        error = envelope(response)
        assert (error["type"], error["param"], error["code"]) == (
            "invalid_request_error",
            "url",
            "url_not_allowed",
        ), url
        assert "RESEARCHDESK_WEBHOOK_ALLOW_PRIVATE" in error["message"]
    assert service.get("/v1/webhooks").json()["data"] == []


def test_the_operator_may_allow_private_addresses(client_for: Any) -> None:
    client = client_for(webhook_allow_private=True)
    for url in ["http://127.0.0.1:8080/hook", "http://10.0.0.1/", "http://[::1]:9/"]:
        assert create(client, {"url": url, "event_types": ALL}).status_code == 200, url


LONG = "x" * 3000


INVALID: list[tuple[dict[str, Any], str, str]] = [
    ({"event_types": ALL}, "url", "missing_required_parameter"),
    ({"url": PUBLIC}, "event_types", "missing_required_parameter"),
    ({"url": PUBLIC, "event_types": []}, "event_types", "invalid_value"),
    ({"url": PUBLIC, "event_types": ["response.created"]}, "event_types[0]", "invalid_value"),
    ({"url": PUBLIC, "event_types": "response.failed"}, "event_types", "invalid_type"),
    ({"url": PUBLIC, "event_types": [1]}, "event_types[0]", "invalid_value"),
    ({"url": PUBLIC, "event_types": ALL * 5}, "event_types", "invalid_value"),
    ({"url": 5, "event_types": ALL}, "url", "invalid_type"),
    ({"url": "", "event_types": ALL}, "url", "invalid_value"),
    ({"url": f"https://example.com/{LONG}", "event_types": ALL}, "url", "invalid_value"),
    ({"url": PUBLIC, "event_types": ALL, "name": LONG}, "name", "invalid_value"),
    ({"url": PUBLIC, "event_types": ALL, "secret": "mine"}, "secret", "unknown_parameter"),
    ({"url": "ftp://example.com/", "event_types": ALL}, "url", "invalid_value"),
    ({"url": "not a url", "event_types": ALL}, "url", "invalid_value"),
    ({"url": "https://u:p@example.com/", "event_types": ALL}, "url", "invalid_value"),
    ({"url": "https://nowhere.invalid/", "event_types": ALL}, "url", "unresolvable_host"),
]


def test_invalid_bodies_are_400_with_the_error_envelope(service: httpx.Client) -> None:
    for body, param, code in INVALID:
        response = create(service, body)
        assert response.status_code == 400, (body, response.text)
        error = envelope(response)
        assert (error["type"], error["param"], error["code"]) == (
            "invalid_request_error",
            param,
            code,
        ), body
    assert service.get("/v1/webhooks").json()["data"] == []


def test_unstorable_text_is_400(service: httpx.Client) -> None:
    for bad in ["\\u0000", "\\udfff"]:
        for field in ["url", "name"]:
            fields = {"url": f'"{PUBLIC}"', "name": '"n"'}
            fields[field] = f'"{PUBLIC if field == "url" else "n"}{bad}"'
            raw = (
                f'{{"url": {fields["url"]}, "name": {fields["name"]}, '
                '"event_types": ["response.failed"]}'
            )
            response = service.post(
                "/v1/webhooks", content=raw.encode(), headers={"content-type": "application/json"}
            )
            assert response.status_code == 400, (raw, response.text)
            assert envelope(response)["param"] == field
    assert service.get("/v1/webhooks").json()["data"] == []


def test_bodies_that_are_not_a_json_object_are_400(service: httpx.Client) -> None:
    for raw in [b"", b"{", b"[]", b'"x"', b"null", b"[" * 100_000, b'{"url": NaN}']:
        response = service.post(
            "/v1/webhooks", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, (raw[:20], response.text)
        envelope(response)


def test_bad_path_and_query_values_are_400(service: httpx.Client) -> None:
    for path in [
        "/v1/webhooks/whep_%00",
        "/v1/webhooks/whep_%00/deliveries",
        "/v1/webhooks?after=%00",
        "/v1/webhooks/whep_x/deliveries?after=%00",
        "/v1/webhooks?limit=0",
        "/v1/webhooks?limit=101",
    ]:
        response = service.get(path)
        assert response.status_code == 400, (path, response.text)
        envelope(response)


def test_a_huge_body_is_413(client_for: Any) -> None:
    client = client_for(max_body_bytes=4096)
    response = create(client, {"url": PUBLIC, "event_types": ALL, "name": "x" * 10_000})
    assert response.status_code == 413
    envelope(response)


def test_the_openai_sdk_manages_endpoints(service: httpx.Client) -> None:
    base = str(service.base_url).rstrip("/")
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
    created = client.webhooks.create(url=PUBLIC, event_types=["response.completed"], name="sdk")
    assert created.signing_secret.startswith("whsec_")
    assert client.webhooks.retrieve(created.id).url == PUBLIC
    assert [hook.id for hook in client.webhooks.list()] == [created.id]
    deleted = client.webhooks.delete(created.id)
    assert (deleted.id, deleted.deleted) == (created.id, True)
    with pytest.raises(openai.NotFoundError):
        client.webhooks.retrieve(created.id)
    with pytest.raises(openai.BadRequestError):
        client.webhooks.create(url="http://127.0.0.1/", event_types=["response.failed"], name="x")
