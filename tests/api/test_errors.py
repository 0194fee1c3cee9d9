"""Every error leaves the app as an OpenAI envelope with the right status: no 422, no trace."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from researchdesk.api.errors import BodySizeLimitMiddleware, error_body, install_error_handlers
from researchdesk.api.schemas import parse_json_body, validate_create
from researchdesk.config import Settings
from researchdesk.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ResearchDeskError,
    Unauthorized,
)

BODY_LIMIT = 2048
SERVICE_ERRORS: dict[str, ResearchDeskError] = {
    "invalid": InvalidRequest("Bad thing.", param="thing", code="invalid_value"),
    "unauthorized": Unauthorized("No key."),
    "not_found": NotFound("No response with id 'resp_x'.", param="response_id"),
    "conflict": Conflict("Already running."),
    "too_large": PayloadTooLarge("Too big.", param="input"),
    "database": DatabaseUnavailable("Down."),
}


class ListQuery(BaseModel):
    """Query parameters of a list endpoint; unknown ones are refused."""

    model_config = ConfigDict(extra="forbid")

    limit: int = 20
    order: Literal["asc", "desc"] = "desc"


class Thing(BaseModel):
    """A JSON body FastAPI parses itself."""

    name: str
    size: int


async def query_the_database(url: str, **connect_args: Any) -> None:
    """Run `SELECT 1` against `url`, letting the driver's real error escape."""
    engine = create_async_engine(url, connect_args=connect_args)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


def build_app(settings: Settings) -> FastAPI:
    """A small app with one route per kind of failure."""
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=BODY_LIMIT)

    @app.get("/raise/{name}")
    async def raise_service_error(name: str) -> None:
        raise SERVICE_ERRORS[name]

    @app.get("/things/{number}")
    async def get_thing(number: int, flag: bool = False) -> dict[str, Any]:
        return {"number": number, "flag": flag}

    @app.get("/search")
    async def search(q: Annotated[str, Query(min_length=2)]) -> dict[str, str]:
        return {"q": q}

    @app.get("/list")
    async def list_things(query: Annotated[ListQuery, Query()]) -> dict[str, Any]:
        return query.model_dump()

    @app.post("/things")
    async def create_thing(thing: Thing) -> Thing:
        return thing

    @app.post("/responses")
    async def create(request: Request) -> dict[str, Any]:
        body = validate_create(parse_json_body(await request.body()), settings)
        return {"input": body.input, "size": len(await request.body())}

    @app.get("/http/{status}")
    async def http_error(status: int) -> None:
        raise HTTPException(status, detail="Custom detail.")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    @app.get("/db/sqlite")
    async def db_sqlite() -> None:
        # The sync driver: aiosqlite's worker thread can outlive a failed connect and then
        # report "Event loop is closed" into a later test.
        engine = create_engine("sqlite:////nonexistent-dir/researchdesk.db")
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()

    @app.get("/db/refused")
    async def db_refused() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        await query_the_database(f"postgresql+asyncpg://u:p@127.0.0.1:{port}/db")

    @app.get("/db/timeout")
    async def db_timeout() -> None:
        silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        try:
            url = f"postgresql+asyncpg://u:p@127.0.0.1:{port}/db"
            await query_the_database(url, timeout=0.2)
        finally:
            silent.close()

    @app.get("/db/invalidated")
    async def db_invalidated() -> None:
        raise DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)

    @app.get("/db/integrity")
    async def db_integrity() -> None:
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    @app.get("/timeout")
    async def plain_timeout() -> None:
        await asyncio.wait_for(asyncio.sleep(1), timeout=0.01)

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(Settings(max_input_chars=100))
    # The last-resort handler re-raises for the server's own log; the client still gets the 500.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def envelope(response: httpx.Response) -> dict[str, Any]:
    """The error object of an OpenAI envelope, checking the envelope's exact shape."""
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


def test_error_body() -> None:
    assert error_body(NotFound("No such response.", param="id")) == {
        "error": {
            "message": "No such response.",
            "type": "invalid_request_error",
            "param": "id",
            "code": "not_found",
        }
    }


@pytest.mark.parametrize("name", SERVICE_ERRORS)
async def test_service_errors(client: httpx.AsyncClient, name: str) -> None:
    exc = SERVICE_ERRORS[name]
    response = await client.get(f"/raise/{name}")
    assert response.status_code == exc.status_code
    assert envelope(response) == error_body(exc)["error"]


@pytest.mark.parametrize(
    ("url", "param", "code"),
    [
        ("/things/abc", "number", "invalid_value"),
        ("/things/1?flag=maybe", "flag", "invalid_value"),
        ("/search", "q", "missing_required_parameter"),
        ("/search?q=a", "q", "invalid_value"),
        ("/list?limit=ten", "limit", "invalid_value"),
        ("/list?order=sideways", "order", "invalid_value"),
        ("/list?colour=red", "colour", "unknown_parameter"),
    ],
)
async def test_query_and_path_validation_is_400(
    client: httpx.AsyncClient, url: str, param: str, code: str
) -> None:
    response = await client.get(url)
    assert response.status_code == 400
    error = envelope(response)
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert f"'{param}'" in error["message"]


async def test_valid_query_passes(client: httpx.AsyncClient) -> None:
    response = await client.get("/list?limit=5&order=asc")
    assert response.json() == {"limit": 5, "order": "asc"}


async def test_body_model_validation_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": "x", "size": "big"})
    assert response.status_code == 400
    assert envelope(response)["param"] == "size"
    response = await client.post("/things", json={"name": "x"})
    assert (envelope(response)["param"], envelope(response)["code"]) == (
        "size",
        "missing_required_parameter",
    )


@pytest.mark.parametrize("route", ["/things", "/responses"])
async def test_invalid_json_is_400(client: httpx.AsyncClient, route: str) -> None:
    response = await client.post(
        route, content=b'{"name": "x",', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = envelope(response)
    assert (error["code"], error["param"]) == ("invalid_json", None)


async def test_create_validation_errors_use_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.post("/responses", json={"input": "x", "tools": [{"type": "x"}]})
    assert response.status_code == 400
    assert (envelope(response)["param"], envelope(response)["code"]) == (
        "tools",
        "unsupported_parameter",
    )
    response = await client.post("/responses", json={"input": "x" * 101})
    assert response.status_code == 413
    assert envelope(response)["param"] == "input"


async def test_unknown_route_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    error = envelope(response)
    assert error["code"] == "not_found"
    assert "/v1/nothing-here" in error["message"]


async def test_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/things/1")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert envelope(response)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("status", "kind"), [(418, "invalid_request_error"), (502, "server_error")]
)
async def test_http_exception_keeps_its_status_and_detail(
    client: httpx.AsyncClient, status: int, kind: str
) -> None:
    response = await client.get(f"/http/{status}")
    assert response.status_code == status
    assert envelope(response)["message"] == "Custom detail."
    assert envelope(response)["type"] == kind


async def test_unexpected_error_is_500_without_details(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="researchdesk.api.errors"):
        response = await client.get("/boom")
    assert response.status_code == 500
    error = envelope(response)
    assert (error["type"], error["code"], error["param"]) == ("server_error", "server_error", None)
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    (record,) = [r for r in caplog.records if r.name == "researchdesk.api.errors"]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "/boom" in record.getMessage()


@pytest.mark.parametrize("route", ["sqlite", "refused", "timeout", "invalidated"])
async def test_database_outage_is_503(client: httpx.AsyncClient, route: str) -> None:
    response = await client.get(f"/db/{route}")
    assert response.status_code == 503
    error = envelope(response)
    assert (error["type"], error["code"]) == ("server_error", "database_unavailable")
    assert response.headers["retry-after"] == "1"
    assert "SELECT" not in response.text
    assert "127.0.0.1" not in response.text


@pytest.mark.parametrize("route", ["/db/integrity", "/timeout"])
async def test_other_database_and_timeout_errors_are_500(
    client: httpx.AsyncClient, route: str
) -> None:
    response = await client.get(route)
    assert response.status_code == 500
    assert envelope(response)["code"] == "server_error"
    assert "duplicate" not in response.text


async def test_body_over_declared_length_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/responses", content=b"x" * (BODY_LIMIT + 1))
    assert response.status_code == 413
    error = envelope(response)
    assert error["code"] == "request_too_large"
    assert str(BODY_LIMIT) in error["message"]


async def chunks(total: int, size: int = 500) -> AsyncIterator[bytes]:
    """A request body streamed without a Content-Length."""
    for start in range(0, total, size):
        yield b" " * min(size, total - start)


async def test_chunked_body_over_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/responses", content=chunks(BODY_LIMIT + 1))
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 413
    assert envelope(response)["code"] == "request_too_large"


async def test_chunked_body_under_limit_reaches_the_route(client: httpx.AsyncClient) -> None:
    body = b'{"input": "hello"}'

    async def stream() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 4):
            yield body[i : i + 4]

    response = await client.post("/responses", content=stream())
    assert response.status_code == 200
    assert response.json() == {"input": "hello", "size": len(body)}


async def test_body_at_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    body = b'{"input": "hello"}'.ljust(BODY_LIMIT)
    response = await client.post("/responses", content=body)
    assert response.status_code == 200
    assert response.json()["size"] == BODY_LIMIT
