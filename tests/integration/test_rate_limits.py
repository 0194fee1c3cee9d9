"""Per-key rate limits over HTTP, seen by the official `openai` SDK and by plain clients, on
SQLite and on PostgreSQL: 429 `rate_limit_exceeded` with `Retry-After`, and OpenAI's
`x-ratelimit-*` headers on every answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from researchdesk.api.app import create_app
from researchdesk.testing.server import ThreadedServer
from tests.conftest import SettingsFactory

MODEL = "moonshotai/Kimi-K2.6:novita"
BOUNDARY = 1_800_000_000.0
"""A minute boundary: the windows are Unix minutes."""
HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests")


class Clock:
    """The service's wall clock, frozen where the test puts it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Start = Callable[..., tuple[str, Clock]]


@pytest.fixture
def start(make_settings: SettingsFactory, database_url: str) -> Iterator[Start]:
    """Start the API (no worker: runs stay queued, so they stay in flight) with rate limits
    and a frozen clock, 30 s before a minute ends; its base URL and the clock."""
    servers: list[ThreadedServer] = []

    def make(**overrides: object) -> tuple[str, Clock]:
        clock = Clock(BOUNDARY - 30)
        app = create_app(make_settings(database_url, **overrides), run_worker=False, clock=clock)
        server = ThreadedServer(app, lifespan=True)
        server.start()
        servers.append(server)
        return server.url, clock

    yield make
    for server in servers:
        server.stop()


def sdk(url: str, key: str = "unused", **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, **options)


def create(client: openai.OpenAI) -> Any:
    return client.responses.with_raw_response.create(model=MODEL, input="q", background=True)


def test_creates_over_the_limit_are_a_rate_limit_error_for_the_sdk(start: Start) -> None:
    url, _clock = start(api_keys="key-a,key-b", rate_limit_creates_per_minute=2)
    team_a = sdk(url, "key-a")
    first, second = create(team_a), create(team_a)
    assert first.parse().status == "queued"
    assert [first.headers["x-ratelimit-remaining-requests"], second.headers[HEADERS[1]]] == [
        "1",
        "0",
    ]
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-reset-requests"] == "30s"
    with pytest.raises(openai.RateLimitError) as refused:
        create(team_a)
    error = refused.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.type == "rate_limit_exceeded"
    assert error.param is None
    assert "creates per minute" in error.message
    assert error.response.headers["retry-after"] == "30"
    assert error.response.headers["retry-after-ms"] == "30000"
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.response.headers["x-ratelimit-reset-requests"] == "30s"
    # Another key has its own count; reads are counted apart (and unlimited here).
    assert create(sdk(url, "key-b")).parse().status == "queued"
    assert team_a.responses.retrieve(first.parse().id).status == "queued"
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer key-a"}) as client:
        assert client.get("/v1/responses").status_code == 200


def test_the_sdk_retries_and_succeeds_once_the_window_frees(start: Start) -> None:
    url, clock = start(api_keys="key-a", rate_limit_creates_per_minute=1)
    clock.now = BOUNDARY - 0.05  # the window ends in 50 ms
    assert create(sdk(url, "key-a")).parse().status == "queued"
    refusals: list[httpx.Response] = []

    def on_response(response: Any) -> None:
        if response.status_code == 429:
            refusals.append(response)
            clock.now = BOUNDARY  # the time the SDK waits passes: the next minute begins

    http = openai.DefaultHttpxClient(event_hooks={"response": [on_response]})
    retrying = sdk(url, "key-a", http_client=http).with_options(max_retries=2)
    assert create(retrying).parse().status == "queued"
    assert [r.headers["retry-after-ms"] for r in refusals] == ["50"]
    http.close()


def test_reads_over_the_limit_are_429_and_every_answer_says_where_the_key_stands(
    start: Start,
) -> None:
    url, clock = start(api_keys="key-a", rate_limit_reads_per_minute=3)
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer key-a"}) as client:
        created = client.post("/v1/responses", json={"input": "q", "background": True})
        assert created.status_code == 200
        assert "x-ratelimit-limit-requests" not in created.headers  # creates are unlimited
        rid = created.json()["id"]
        answers = [
            client.get(f"/v1/responses/{rid}"),
            client.get("/v1/responses"),
            client.get("/v1/responses/resp_missing"),  # an error still counts and says so
        ]
        assert [a.status_code for a in answers] == [200, 200, 404]
        assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0"]
        assert {a.headers["x-ratelimit-limit-requests"] for a in answers} == {"3"}
        refused = client.get(f"/v1/responses/{rid}/input_items")
        assert refused.status_code == 429
        assert refused.json() == {
            "error": {
                "message": refused.json()["error"]["message"],
                "type": "rate_limit_exceeded",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
        assert "reads per minute" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == "30"
        clock.now = BOUNDARY
        assert client.post(f"/v1/responses/{rid}/cancel").status_code == 200


def test_with_the_api_open_the_limits_hold_for_its_one_caller(start: Start) -> None:
    url, _clock = start(rate_limit_creates_per_minute=1)
    client = sdk(url)
    assert create(client).parse().status == "queued"
    with pytest.raises(openai.RateLimitError):
        create(sdk(url, "another-key-changes-nothing"))


def test_every_create_request_counts_an_idempotent_repeat_too(start: Start) -> None:
    """Counted at the door, before the database is asked whether the key was used."""
    url, _clock = start(api_keys="key-a", rate_limit_creates_per_minute=2)
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer key-a"}) as client:
        body = {"input": "q", "background": True}
        keyed = {"Idempotency-Key": "ticket-1"}
        first = client.post("/v1/responses", json=body, headers=keyed)
        again = client.post("/v1/responses", json=body, headers=keyed)
        assert [first.status_code, again.status_code] == [200, 200]
        assert first.json()["id"] == again.json()["id"]
        assert again.headers["x-ratelimit-remaining-requests"] == "0"
        assert client.post("/v1/responses", json=body).status_code == 429


def test_runs_in_flight_are_limited_per_key(start: Start) -> None:
    url, _clock = start(api_keys="key-a,key-b", rate_limit_runs_in_flight=2)
    team_a = sdk(url, "key-a")
    first, _second = create(team_a).parse(), create(team_a).parse()
    with pytest.raises(openai.RateLimitError) as refused:
        create(team_a)
    assert "at most 2 may be queued or in progress" in refused.value.message
    assert refused.value.response.headers["retry-after"] == "5"
    assert "x-ratelimit-limit-requests" not in refused.value.response.headers
    assert create(sdk(url, "key-b")).parse().status == "queued"
    team_a.responses.cancel(first.id)  # one fewer in flight
    assert create(team_a).parse().status == "queued"
    with pytest.raises(openai.RateLimitError):
        create(team_a)


def test_without_limits_nothing_is_counted_or_shown(start: Start) -> None:
    url, _clock = start(api_keys="key-a")
    created = create(sdk(url, "key-a"))
    assert not [name for name in created.headers if name.startswith("x-ratelimit")]
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer key-a"}) as client:
        assert not [h for h in client.get("/v1/responses").headers if h.startswith("x-ratelimit")]


def admin(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": "Bearer root"})


def new_key(url: str, **limits: object) -> tuple[str, str]:
    """A database `user` key with these rate limits of its own: its id and secret."""
    with admin(url) as client:
        made = client.post("/v1/keys", json={"name": "team", **limits})
    assert made.status_code == 200, made.text
    return made.json()["id"], made.json()["secret"]


def test_a_database_key_carries_its_own_rate_limits(start: Start) -> None:
    url, _clock = start(admin_api_keys="root", rate_limit_creates_per_minute=3)
    strict_id, strict = new_key(url, creates_per_minute=1, reads_per_minute=2)
    _plain_id, plain = new_key(url)
    with admin(url) as client:
        shown = client.get(f"/v1/keys/{strict_id}").json()
        # The usage report shows the limits each key is held to: its own, else the server's.
        applied = {
            k["api_key_id"]: k["rate_limits"] for k in client.get("/v1/usage").json()["keys"]
        }
    assert applied[strict_id] == {
        "creates_per_minute": 1,
        "reads_per_minute": 2,
        "runs_in_flight": None,
    }
    assert applied[_plain_id] == {
        "creates_per_minute": 3,
        "reads_per_minute": None,
        "runs_in_flight": None,
    }
    assert (shown["creates_per_minute"], shown["reads_per_minute"], shown["runs_in_flight"]) == (
        1,
        2,
        None,
    )
    # Its own creates limit (1), not the server's (3).
    first = create(sdk(url, strict))
    assert first.headers["x-ratelimit-limit-requests"] == "1"
    with pytest.raises(openai.RateLimitError) as refused:
        create(sdk(url, strict))
    assert "limit 1" in refused.value.message
    # Its own reads limit (the server has none).
    reads = [sdk(url, strict).responses.with_raw_response.retrieve(first.parse().id)]
    assert reads[0].headers["x-ratelimit-limit-requests"] == "2"
    reads.append(sdk(url, strict).responses.with_raw_response.retrieve(first.parse().id))
    with pytest.raises(openai.RateLimitError):
        sdk(url, strict).responses.retrieve(first.parse().id)
    # A key that sets none is held to the server's settings.
    made = [create(sdk(url, plain)) for _ in range(3)]
    assert {m.headers["x-ratelimit-limit-requests"] for m in made} == {"3"}
    with pytest.raises(openai.RateLimitError):
        create(sdk(url, plain))
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {plain}"}) as client:
        assert "x-ratelimit-limit-requests" not in client.get("/v1/responses").headers


def test_a_changed_rate_limit_applies_from_the_next_request(start: Start) -> None:
    url, _clock = start(admin_api_keys="root", rate_limit_creates_per_minute=1)
    key_id, secret = new_key(url, creates_per_minute=2)
    team = sdk(url, secret)
    create(team)
    with admin(url) as client:
        raised = client.patch(f"/v1/keys/{key_id}", json={"creates_per_minute": 4})
        assert raised.json()["creates_per_minute"] == 4
    assert create(team).headers["x-ratelimit-remaining-requests"] == "2"
    with admin(url) as client:  # null: back to the server's setting (1), already used up
        cleared = client.patch(f"/v1/keys/{key_id}", json={"creates_per_minute": None})
        assert cleared.json()["creates_per_minute"] is None
    with pytest.raises(openai.RateLimitError) as refused:
        create(team)
    assert "limit 1" in refused.value.message


def test_a_database_key_limits_its_own_runs_in_flight(start: Start) -> None:
    url, _clock = start(admin_api_keys="root", rate_limit_runs_in_flight=5)
    _key_id, secret = new_key(url, runs_in_flight=1)
    team = sdk(url, secret)
    first = create(team).parse()
    with pytest.raises(openai.RateLimitError) as refused:
        create(team)
    assert "at most 1 may be queued or in progress" in refused.value.message
    team.responses.cancel(first.id)
    assert create(team).parse().status == "queued"


@pytest.mark.parametrize(
    "body",
    [
        {"creates_per_minute": 0},
        {"reads_per_minute": -1},
        {"runs_in_flight": 1_000_001},
        {"creates_per_minute": 1.5},
        {"creates_per_minute": "10"},
        {"runs_in_flight": True},
        {"reads_per_minute": 10**40},
    ],
)
def test_a_rate_limit_out_of_range_is_a_clear_400(start: Start, body: dict[str, object]) -> None:
    url, _clock = start(admin_api_keys="root")
    with admin(url) as client:
        answer = client.post("/v1/keys", json=body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == next(iter(body))
