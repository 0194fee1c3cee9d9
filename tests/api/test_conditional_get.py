"""`GET /v1/responses/{id}` over HTTP: `ETag`, `If-None-Match` → 304, `Cache-Control: no-cache`;
the official SDK still reads it; the list, the stream and a cancel show the stored object."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai.types.responses import ResponseCompletedEvent, ResponseIncompleteEvent

from researchdesk.api.app import create_app
from researchdesk.testing.router import FakeRouter, reply, tool_calls
from researchdesk.testing.server import ThreadedServer
from tests.conftest import SettingsFactory
from tests.integration.helpers import wait_for

ANSWER = "Steering is fragile — ünïcödé ([Learned Capacity Factors](https://huggingface.co/papers/2501.01234))."


@pytest.fixture
def service_database(database_url: str) -> str:
    return database_url


def sdk(service: httpx.Client) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=str(service.base_url).rstrip("/") + "/v1", api_key="unused", max_retries=0
    )


def finished_run(service: httpx.Client, router: FakeRouter) -> str:
    router.script(
        tool_calls(("hf_papers", {"operation": "search", "query": "capacity factors"})),
        reply(ANSWER),
    )
    created = service.post("/v1/responses", json={"input": "q", "background": True}).json()
    assert wait_for(service, created["id"])["status"] == "completed"
    response_id: str = created["id"]
    return response_id


def test_a_finished_response_has_a_strong_etag_and_answers_304_when_it_is_named(
    service: httpx.Client, router: FakeRouter
) -> None:
    response_id = finished_run(service, router)
    url = f"/v1/responses/{response_id}"
    first = service.get(url)
    tag = first.headers["etag"]
    assert tag.startswith('"')
    assert tag.endswith('"')
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["content-type"] == "application/json"
    again = service.get(url)
    assert (again.content, again.headers["etag"]) == (first.content, tag)

    for named in (tag, f'"other", {tag}', f"W/{tag}", "*"):
        unchanged = service.get(url, headers={"If-None-Match": named})
        assert unchanged.status_code == 304, named
        assert unchanged.content == b""
        assert unchanged.headers["etag"] == tag
        assert unchanged.headers["cache-control"] == "no-cache"
    changed = service.get(url, headers={"If-None-Match": '"something-else"'})
    assert (changed.status_code, changed.content) == (200, first.content)

    missing = service.get("/v1/responses/resp_missing", headers={"If-None-Match": "*"})
    assert missing.status_code == 404


def test_a_running_response_revalidates_until_it_changes(
    service: httpx.Client, router: FakeRouter
) -> None:
    gate = threading.Event()
    router.script(
        tool_calls(("hf_papers", {"operation": "search", "query": "capacity factors"})),
        reply(ANSWER, gate=gate),
    )
    created = service.post("/v1/responses", json={"input": "q", "background": True}).json()
    url = f"/v1/responses/{created['id']}"
    router.wait_for_chat_requests(2)  # the tool call is journaled; the answer is held
    running = wait_for(service, created["id"], {"in_progress"})
    assert [item["type"] for item in running["output"]] == ["custom_tool_call"]
    first = service.get(url)
    tag = first.headers["etag"]
    assert tag.startswith('W/"')
    assert service.get(url).headers["etag"] == tag
    unchanged = service.get(url, headers={"If-None-Match": tag})
    assert (unchanged.status_code, unchanged.content) == (304, b"")

    gate.set()
    final = wait_for(service, created["id"])
    assert final["status"] == "completed", final["error"]
    done = service.get(url, headers={"If-None-Match": tag})
    assert done.status_code == 200
    assert done.json()["output"][-1]["content"][0]["text"] == ANSWER
    assert done.headers["etag"] != tag
    assert done.headers["etag"].startswith('"')


def test_the_sdk_reads_the_stored_object_and_its_stream_ends_with_it(
    service: httpx.Client, router: FakeRouter
) -> None:
    response_id = finished_run(service, router)
    stored = service.get(f"/v1/responses/{response_id}")
    client = sdk(service)
    retrieved = client.responses.retrieve(response_id)
    assert retrieved.status == "completed"
    assert retrieved.output_text == ANSWER
    assert retrieved.model_dump(mode="json", exclude_unset=True) == stored.json()

    events = list(client.responses.retrieve(response_id, stream=True))
    last = events[-1]
    assert isinstance(last, ResponseCompletedEvent)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert last.response.model_dump(mode="json", exclude_unset=True) == stored.json()


def test_the_list_shows_each_response_as_a_get_does(
    service: httpx.Client, router: FakeRouter
) -> None:
    ids = [finished_run(service, router) for _ in range(2)]
    gets = {rid: service.get(f"/v1/responses/{rid}").json() for rid in ids}
    page = service.get("/v1/responses", params={"limit": 5})
    assert page.headers["content-type"] == "application/json"
    listed = page.json()
    assert [item["id"] for item in listed["data"]] == ids[::-1]
    assert listed["data"] == [gets[rid] for rid in ids[::-1]]
    assert (listed["first_id"], listed["last_id"], listed["has_more"]) == (ids[1], ids[0], False)
    second = service.get("/v1/responses", params={"limit": 1, "after": ids[1]}).json()
    assert second["data"] == [gets[ids[0]]]


@pytest.fixture
def api_only(make_settings: SettingsFactory, database_url: str) -> Iterator[httpx.Client]:
    """The API without a worker: responses stay queued until cancelled."""
    server = ThreadedServer(
        create_app(make_settings(database_url), run_worker=False), lifespan=True
    )
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        server.stop()


def test_a_cancelled_queued_response_is_final_at_once_and_served_as_cancel_answered(
    api_only: httpx.Client,
) -> None:
    created = api_only.post("/v1/responses", json={"input": "q", "background": True}).json()
    queued = api_only.get(f"/v1/responses/{created['id']}")
    assert queued.headers["etag"].startswith('W/"')
    cancelled = api_only.post(f"/v1/responses/{created['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert "etag" not in cancelled.headers
    read = api_only.get(f"/v1/responses/{created['id']}")
    assert read.content == cancelled.content
    assert read.headers["etag"].startswith('"')
    again = api_only.post(f"/v1/responses/{created['id']}/cancel")
    assert again.content == cancelled.content

    events = list(sdk(api_only).responses.retrieve(created["id"], stream=True))
    last = events[-1]
    assert isinstance(last, ResponseIncompleteEvent)
    assert last.response.status == "cancelled"
    assert json.loads(last.response.model_dump_json(exclude_unset=True)) == read.json()
