"""Hostile input through the real server: a 400, never a 500, before anything is stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from researchdesk.api.app import create_app
from researchdesk.api.schemas import MAX_JSON_DEPTH
from researchdesk.testing.router import FakeRouter, reply
from researchdesk.testing.server import ThreadedServer
from tests.integration.helpers import wait_for

BODY_LIMIT = 4096
INPUT_LIMIT = 1000
# The JSON escapes a client sends: decoded, a lone surrogate and a NUL.
SURROGATE = "\\udfff"
NUL = "\\u0000"


@pytest.fixture
def service_database(database_url: str) -> str:
    """The real app under uvicorn on SQLite and on PostgreSQL."""
    return database_url


@pytest.fixture
def service_overrides() -> dict[str, object]:
    return {"max_body_bytes": BODY_LIMIT, "max_input_chars": INPUT_LIMIT}


def envelope(response: httpx.Response) -> dict[str, Any]:
    """The error object of an OpenAI envelope whose code is a non-empty string."""
    assert response.headers["content-type"] == "application/json", response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["code"], str)
    assert error["code"]
    return error


def post_raw(client: httpx.Client, body: str) -> httpx.Response:
    """POST a JSON text exactly as written (escapes included) to the create route."""
    return client.post(
        "/v1/responses", content=body.encode(), headers={"content-type": "application/json"}
    )


def assert_nothing_stored(client: httpx.Client, router: FakeRouter) -> None:
    """No response row, no model call, no spend."""
    assert client.get("/v1/responses").json()["data"] == []
    usage = client.get("/v1/usage").json()
    assert usage["data"] == []
    assert float(usage["total_usd"]) == 0
    assert router.chat_requests() == []


def unstorable_bodies(bad: str) -> list[tuple[str, str | None]]:
    """Create bodies carrying `bad` (a JSON escape) in every string field, and the param named."""
    return [
        (f'{{"input": "q", "metadata": {{"k": "a{bad}"}}}}', "metadata.k"),
        (f'{{"input": "q", "metadata": {{"k{bad}": "v"}}}}', "metadata"),
        (f'{{"input": "{bad}"}}', "input"),
        (f'{{"input": [{{"role": "user", "content": "x{bad}"}}]}}', "input[0].content"),
        (
            f'{{"input": [{{"role": "user", "content": '
            f'[{{"type": "input_text", "text": "{bad}"}}]}}]}}',
            "input[0].content[0].text",
        ),
        (f'{{"input": [{{"role": "user{bad}", "content": "x"}}]}}', "input[0].role"),
        (f'{{"input": [{{"role": "user", "content": "x", "id": "{bad}"}}]}}', "input[0].id"),
        (f'{{"input": "q", "instructions": "be {bad} brief"}}', "instructions"),
        (f'{{"input": "q", "user": "{bad}"}}', "user"),
        (f'{{"input": "q", "safety_identifier": "{bad}"}}', "safety_identifier"),
        (f'{{"input": "q", "prompt_cache_key": "{bad}"}}', "prompt_cache_key"),
        (f'{{"input": "q", "previous_response_id": "resp_{bad}"}}', "previous_response_id"),
        (f'{{"input": "q", "model": "org/model{bad}"}}', "model"),
        (f'{{"input": "q", "max_cost_usd": "0.1{bad}"}}', "max_cost_usd"),
        (f'{{"input": "q", "tool_choice": "{bad}"}}', "tool_choice"),
        (f'{{"input": "q", "truncation": "{bad}"}}', "truncation"),
        (f'{{"input": "q", "{bad}": 1}}', None),
    ]


@pytest.mark.parametrize(("bad", "words"), [(SURROGATE, "surrogate"), (NUL, "NUL")])
def test_unstorable_text_anywhere_in_the_body_is_400_and_nothing_is_stored(
    service: httpx.Client, router: FakeRouter, bad: str, words: str
) -> None:
    for body, param in unstorable_bodies(bad):
        response = post_raw(service, body)
        assert response.status_code == 400, (body, response.text)
        error = envelope(response)
        assert (error["code"], error["param"]) == ("invalid_value", param), body
        assert words in error["message"]
    assert_nothing_stored(service, router)


def test_paired_surrogate_escapes_are_ordinary_text(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.script(reply("Done."))
    body = '{"input": "q \\ud83d\\ude00", "metadata": {"emoji": "\\ud83d\\ude00"}}'
    response = post_raw(service, body)
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"emoji": "😀"}
    assert service.get(f"/v1/responses/{response.json()['id']}").status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/v1/responses/resp_%00",
        "/v1/responses/resp_%00/input_items",
        "/v1/responses?model=a%00",
        "/v1/responses?after=resp_%00",
        "/v1/responses?metadata[k]=%00",
        "/v1/responses?metadata[k%00]=v",
        "/v1/responses/resp_x/input_items?after=msg_%00",
    ],
)
def test_nul_in_path_or_query_is_400(service: httpx.Client, url: str) -> None:
    response = service.get(url)
    assert response.status_code == 400, response.text
    assert envelope(response)["code"] == "invalid_value"
    assert "NUL" in envelope(response)["message"]


@pytest.mark.parametrize(
    "url",
    [
        "/v1/responses/%ED%BF%BF",
        "/v1/responses/%ED%BF%BF/input_items",
        "/v1/responses?model=%ED%BF%BF",
        "/v1/responses?metadata[%ED%BF%BF]=%ED%BF%BF",
        "/v1/responses?after=%ED%BF%BF",
    ],
)
def test_encoded_surrogates_in_path_or_query_are_never_500(service: httpx.Client, url: str) -> None:
    # Percent-decoding turns invalid UTF-8 into U+FFFD: ordinary text, an unknown id or cursor.
    response = service.get(url)
    assert response.status_code in (200, 400, 404), response.text
    if response.status_code != 200:
        envelope(response)
    assert service.post("/v1/responses/%ED%BF%BF/cancel").status_code == 404
    assert service.delete("/v1/responses/%ED%BF%BF").status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,
        '{"a":' * 100_000,
        "[" * 100_000 + "]" * 100_000,
        '{"input": "q", "metadata": {"k": ' + "[" * 5000 + "]" * 5000 + "}}",
        '{"input": "q", "metadata": {"k": ' + "[" * 500 + "]" * 500 + "}}",
        '{"input": [{"role": "user", "content": [{"type": "input_text", "text": "q", '
        '"annotations": ' + "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1) + "}]}]}",
    ],
)
def test_deeply_nested_json_is_400_invalid_json(
    client_for: Any, router: FakeRouter, body: str
) -> None:
    with client_for(max_body_bytes=1_000_000) as client:
        response = post_raw(client, body)
        assert response.status_code == 400, response.text[:200]
        assert envelope(response)["code"] == "invalid_json"
        assert_nothing_stored(client, router)


def test_integer_and_float_query_parameters_are_bounded(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.script(reply("Done."))
    rid = service.post("/v1/responses", json={"input": "q"}).json()["id"]
    huge = ["9223372036854775808", "2147483648", "-1", "1e309", "abc", "1.5"]
    urls = [f"/v1/responses/{rid}?stream=true&starting_after={v}" for v in huge]
    urls += [f"/v1/responses/{rid}?starting_after={v}" for v in huge]
    urls += [f"/v1/responses?limit={v}" for v in [*huge, "0", "101"]]
    urls += [f"/v1/responses/{rid}/input_items?limit={v}" for v in [*huge, "0", "101"]]
    for name in ("created_after", "created_before"):
        urls += [f"/v1/responses?{name}={v}" for v in ["nan", "inf", "-inf", "1e400", "abc"]]
    for url in urls:
        response = service.get(url)
        assert response.status_code == 400, (url, response.text)
        assert envelope(response)["param"] in url, url
    # The largest sequence number a stream can start after is accepted: an empty stream.
    tail = service.get(f"/v1/responses/{rid}?stream=true&starting_after=2147483647")
    assert tail.status_code == 200
    assert tail.headers["content-type"].startswith("text/event-stream")
    assert "sequence_number" not in tail.text
    assert service.get("/v1/responses?created_after=1e300").json()["data"] == []


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("start_date=2026-13-45", "start_date"),
        ("start_date=2026-02-30", "start_date"),
        ("end_date=0000-01-01", "end_date"),
        ("end_date=2026-1-01", "end_date"),
        ("start_date=2026-03-02&end_date=2026-03-01", "end_date"),
    ],
)
def test_usage_refuses_impossible_dates(service: httpx.Client, query: str, param: str) -> None:
    response = service.get(f"/v1/usage?{query}")
    assert response.status_code == 400, response.text
    error = envelope(response)
    assert (error["code"], error["param"]) == ("invalid_value", param)


def test_usage_accepts_real_dates(service: httpx.Client) -> None:
    response = service.get("/v1/usage?start_date=2024-02-29&end_date=2024-02-29")
    assert response.status_code == 200
    assert response.json()["data"] == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_error_code_is_never_null(service: httpx.Client, router: FakeRouter) -> None:
    router.script(reply("Done."))
    rid = service.post("/v1/responses", json={"input": "q"}).json()["id"]
    cases: list[tuple[str, str, dict[str, Any], int, str | None]] = [
        ("GET", "/v1/responses?after=resp_unknown", {}, 400, "after"),
        ("GET", f"/v1/responses/{rid}/input_items?after=msg_unknown", {}, 400, "after"),
        (
            "POST",
            "/v1/responses",
            {"json": {"input": "q"}, "headers": {"Idempotency-Key": ""}},
            400,
            "Idempotency-Key",
        ),
        (
            "POST",
            "/v1/responses",
            {"json": {"input": "q"}, "headers": {"Idempotency-Key": "k" * 256}},
            400,
            "Idempotency-Key",
        ),
        (
            "POST",
            "/v1/responses",
            {"json": {"input": "q", "previous_response_id": "resp_nope"}},
            404,
            "previous_response_id",
        ),
        ("POST", "/v1/responses", {"content": b"{"}, 400, None),
        ("POST", "/v1/responses", {"json": []}, 400, None),
        ("POST", "/v1/responses", {"json": {"input": "q", "colour": 1}}, 400, "colour"),
        ("POST", "/v1/responses", {"content": b" " * (BODY_LIMIT + 1)}, 413, None),
        ("POST", "/v1/responses", {"json": {"input": "x" * (INPUT_LIMIT + 1)}}, 413, "input"),
        ("PUT", "/v1/responses", {}, 405, None),
        ("PATCH", f"/v1/responses/{rid}", {}, 405, None),
        ("GET", "/v1/nothing-here", {}, 404, None),
        ("GET", "/v1/responses/resp_unknown", {}, 404, "response_id"),
        ("POST", "/v1/responses/resp_unknown/cancel", {}, 404, "response_id"),
        ("DELETE", "/v1/responses/resp_unknown", {}, 404, "response_id"),
        ("POST", f"/v1/responses/{rid}/cancel", {}, 400, "response_id"),
        ("GET", "/v1/responses?order=sideways", {}, 400, "order"),
        ("GET", "/v1/responses?status=sleeping", {}, 400, "status"),
        ("GET", "/v1/usage?start_date=yesterday", {}, 400, "start_date"),
    ]
    for method, url, kwargs, status, param in cases:
        response = service.request(method, url, **kwargs)
        assert response.status_code == status, (method, url, response.text)
        assert envelope(response)["param"] == param, (method, url)


def test_allow_header_on_405_names_every_method_of_the_path(service: httpx.Client) -> None:
    cases = [
        ("PUT", "/v1/responses", {"GET", "POST"}),
        ("PUT", "/responses", {"GET", "POST"}),
        ("PUT", "/v1/responses/resp_x", {"GET", "DELETE"}),
        ("HEAD", "/v1/responses/resp_x", {"GET", "DELETE"}),
        ("GET", "/v1/responses/resp_x/cancel", {"POST"}),
        ("POST", "/v1/usage", {"GET"}),
        ("DELETE", "/healthz", {"GET"}),
    ]
    for method, url, allowed in cases:
        response = service.request(method, url)
        assert response.status_code == 405
        assert set(response.headers["allow"].split(", ")) == allowed, url
        if method != "HEAD":
            assert envelope(response)["code"] == "method_not_allowed"


def local_port(response: httpx.Response) -> int:
    """The client-side port of the connection a response came on."""
    port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


@pytest.fixture
def app_with_a_bug(make_settings: Any, sqlite_url: str) -> Iterator[str]:
    """The real app plus one route that fails unexpectedly, under uvicorn."""
    app = create_app(make_settings(sqlite_url, max_body_bytes=BODY_LIMIT))

    async def bug() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/v1/bug", bug, methods=["GET", "POST"])
    server = ThreadedServer(app, lifespan=True)
    server.start()
    yield server.url
    server.stop()


def test_connection_stays_usable_after_a_500(app_with_a_bug: str) -> None:
    with httpx.Client(base_url=app_with_a_bug, timeout=30) as client:
        first = client.get("/v1/responses")
        for _ in range(3):
            failed = client.post("/v1/bug", json={"input": "q"})
            assert failed.status_code == 500
            assert envelope(failed)["code"] == "server_error"
            assert "a bug" not in failed.text
            assert failed.headers.get("connection") != "close"
            after = client.get("/v1/responses")
            assert after.status_code == 200
            # The same keep-alive connection answered: the server did not drop it.
            assert local_port(after) == local_port(failed) == local_port(first)


def chunked(total: int) -> Iterator[bytes]:
    """A body sent without a Content-Length, in chunks."""
    for start in range(0, total, 1000):
        yield b" " * min(1000, total - start)


def test_connection_stays_usable_after_a_413(app_with_a_bug: str) -> None:
    with httpx.Client(base_url=app_with_a_bug, timeout=30) as client:
        first = client.get("/v1/responses")
        bodies = [b" " * (BODY_LIMIT + 1), b" " * (BODY_LIMIT * 200), chunked(BODY_LIMIT * 200)]
        for body in bodies:
            too_large = client.post("/v1/responses", content=body)
            assert too_large.status_code == 413
            assert envelope(too_large)["code"] == "request_too_large"
            after = client.get("/v1/responses")
            assert after.status_code == 200
            assert local_port(after) == local_port(too_large) == local_port(first)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("text", "param"), [("x" * BODY_LIMIT * 1000, None), ("x" * (INPUT_LIMIT + 1), "input")]
)
def test_openai_sdk_sees_413_as_an_api_status_error(
    service: httpx.Client, router: FakeRouter, text: str, param: str | None
) -> None:
    client = openai.OpenAI(base_url=str(service.base_url.join("/v1")), api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        client.responses.create(model="moonshotai/Kimi-K2.6:novita", input=text)
    error = raised.value
    assert not isinstance(error, openai.APIConnectionError)
    assert error.status_code == 413
    assert error.code == "request_too_large"
    assert isinstance(error.body, dict)
    assert set(error.body) == {"message", "type", "param", "code"}
    assert error.body["param"] == param
    assert error.body["type"] == "invalid_request_error"
    assert_nothing_stored(service, router)


def test_previous_response_must_exist_and_is_named(
    service: httpx.Client, router: FakeRouter
) -> None:
    router.script(reply("Done."))
    rid = service.post("/v1/responses", json={"input": "q", "background": True}).json()["id"]
    assert wait_for(service, rid)["status"] == "completed"
    response = service.post(
        "/v1/responses", json={"input": "q", "previous_response_id": "resp_missing"}
    )
    assert response.status_code == 404
    assert envelope(response)["param"] == "previous_response_id"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_output_tokens", 10**30),
        ("max_output_tokens", 1_000_001),
        ("max_tool_calls", 2**63),
        ("max_tool_calls", 10_001),
        ("max_cost_usd", 10**400),
        ("temperature", 1e308),
    ],
)
def test_huge_numbers_are_400_and_nothing_is_stored(
    service: httpx.Client, router: FakeRouter, field: str, value: object
) -> None:
    body = f'{{"input": "q", "background": true, "{field}": {value}}}'
    refused = post_raw(service, body)
    assert refused.status_code == 400
    assert envelope(refused)["param"] == field
    assert_nothing_stored(service, router)


def key_bodies() -> list[tuple[str, str | None, str]]:
    """Key bodies (JSON text as sent) the key routes refuse, the param named, and the code."""
    return [
        ("[]", None, "invalid_type"),
        ('"k"', None, "invalid_type"),
        ("{", None, "invalid_json"),
        ('{"name": "k", "colour": 1}', "colour", "unknown_parameter"),
        ('{"name": 1}', "name", "invalid_type"),
        ('{"name": "' + "n" * 257 + '"}', "name", "invalid_value"),
        (f'{{"name": "a{NUL}"}}', "name", "invalid_value"),
        (f'{{"name": "a{SURROGATE}"}}', "name", "invalid_value"),
        ('{"role": "owner"}', "role", "invalid_value"),
        ('{"role": ["admin"]}', "role", "invalid_value"),
        ('{"daily_usd": -1}', "daily_usd", "invalid_value"),
        ('{"daily_usd": 1e400}', "daily_usd", "invalid_value"),
        ('{"daily_usd": 1000001}', "daily_usd", "invalid_value"),
        ('{"monthly_usd": "lots"}', "monthly_usd", "invalid_value"),
        ('{"monthly_usd": true}', "monthly_usd", "invalid_type"),
        ('{"monthly_usd": {"usd": 1}}', "monthly_usd", "invalid_type"),
        ('{"expires_at": 1.5}', "expires_at", "invalid_type"),
        ('{"expires_at": -1}', "expires_at", "invalid_value"),
        ('{"expires_at": 99999999999999999999}', "expires_at", "invalid_value"),
        ('{"expires_at": 1000}', "expires_at", "invalid_value"),  # in the past
    ]


def test_key_bodies_are_checked_and_nothing_is_stored(client_for: Any) -> None:
    with client_for(admin_api_keys="root") as client:
        root = {"authorization": "Bearer root", "content-type": "application/json"}
        target = client.post("/v1/keys", json={"name": "target"}, headers=root).json()["id"]
        for body, param, code in key_bodies():
            for method, url in (("POST", "/v1/keys"), ("PATCH", f"/v1/keys/{target}")):
                refused = client.request(method, url, content=body.encode(), headers=root)
                assert refused.status_code == 400, (method, body, refused.text)
                error = envelope(refused)
                assert (error["param"], error["code"]) == (param, code), (method, body)
        keys = client.get("/v1/keys", headers=root).json()["data"]
        assert [(key["id"], key["name"]) for key in keys] == [(target, "target")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_key_updates_refuse_nulls_and_past_expiry(client_for: Any) -> None:
    with client_for(admin_api_keys="root") as client:
        root = {"authorization": "Bearer root"}
        target = client.post("/v1/keys", json={"name": "t"}, headers=root).json()["id"]
        for body, param in (
            ({"name": None}, "name"),
            ({"role": None}, "role"),
            ({"expires_at": 1000}, "expires_at"),
        ):
            refused = client.patch(f"/v1/keys/{target}", json=body, headers=root)
            assert refused.status_code == 400, refused.text
            assert envelope(refused)["param"] == param


@pytest.mark.parametrize(
    "url",
    ["/v1/keys/key_%00", "/v1/keys?after=key_%00", "/v1/keys/%ED%BF%BF", "/v1/keys?limit=0"],
)
def test_key_paths_and_queries_are_checked(service: httpx.Client, url: str) -> None:
    # An open API: anyone may manage keys, so this reaches the checks.
    for method in ("GET", "PATCH", "DELETE"):
        if "?" in url and method != "GET":
            continue
        response = service.request(method, url, json={} if method == "PATCH" else None)
        assert response.status_code in (400, 404), (method, url, response.text)
        envelope(response)
    assert service.get("/v1/keys").json()["data"] == []
