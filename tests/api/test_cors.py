"""CORS for browser dashboards: off by default; preflights and answers for allowed origins only."""

from __future__ import annotations

from typing import Any

import httpx

DASHBOARD = "https://dash.example.com"
PREFLIGHT = {
    "origin": DASHBOARD,
    "access-control-request-method": "GET",
    "access-control-request-headers": "authorization, if-none-match, idempotency-key, content-type",
}


def test_cors_is_off_by_default(service: httpx.Client) -> None:
    preflight = service.options("/v1/responses", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 405  # no CORS: an OPTIONS is just an unknown method
    answer = service.get("/v1/responses", headers={"origin": DASHBOARD})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


def test_an_allowed_origin_gets_preflights_and_readable_headers(client_for: Any) -> None:
    client = client_for(cors_origins=f"{DASHBOARD}, https://other.example.com", api_keys="k1")
    preflight = client.options("/v1/responses/resp_x", headers=PREFLIGHT)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == DASHBOARD
    allowed = {
        h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "if-none-match", "idempotency-key", "content-type"} <= allowed
    assert {"GET", "POST", "PATCH", "DELETE"} <= set(
        preflight.headers["access-control-allow-methods"].replace(" ", "").split(",")
    )
    assert "access-control-allow-credentials" not in preflight.headers

    created = client.post(
        "/v1/responses",
        json={"input": "q", "background": True},
        headers={"origin": DASHBOARD, "authorization": "Bearer k1"},
    )
    assert created.status_code == 200
    assert created.headers["access-control-allow-origin"] == DASHBOARD
    exposed = {
        h.strip().lower() for h in created.headers["access-control-expose-headers"].split(",")
    }
    assert {"etag", "retry-after"} <= exposed
    # and where the key stands against its rate limits
    assert {"retry-after-ms", "x-ratelimit-remaining-requests"} <= exposed
    # Errors carry the headers too, so that a dashboard can read the error envelope.
    refused = client.get("/v1/responses", headers={"origin": DASHBOARD})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == DASHBOARD


def test_a_disallowed_origin_gets_no_cors_headers(client_for: Any) -> None:
    client = client_for(cors_origins=DASHBOARD)
    evil = {**PREFLIGHT, "origin": "https://evil.example.com"}
    preflight = client.options("/v1/responses", headers=evil)
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.headers["content-type"] == "application/json"
    assert preflight.json() == {
        "error": {
            "message": "CORS preflight refused: the origin 'https://evil.example.com' is not "
            "allowed (see RESEARCHDESK_CORS_ORIGINS).",
            "type": "invalid_request_error",
            "param": None,
            "code": "cors_origin_not_allowed",
        }
    }
    answer = client.get("/v1/responses", headers={"origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in answer.headers


def test_a_wildcard_allows_any_origin_without_credentials(client_for: Any) -> None:
    client = client_for(cors_origins="*")
    preflight = client.options("/v1/webhooks", headers={**PREFLIGHT, "origin": "https://a.b"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in preflight.headers
    answer = client.get("/v1/responses", headers={"origin": "https://a.b"})
    assert answer.headers["access-control-allow-origin"] == "*"


def test_a_refused_method_or_header_is_named_in_the_envelope(client_for: Any) -> None:
    client = client_for(cors_origins=DASHBOARD)
    put = client.options(
        "/v1/responses", headers={**PREFLIGHT, "access-control-request-method": "PUT"}
    )
    assert put.status_code == 400
    assert put.json()["error"]["code"] == "cors_method_not_allowed"
    assert "'PUT'" in put.json()["error"]["message"]
    odd = client.options(
        "/v1/responses", headers={**PREFLIGHT, "access-control-request-headers": "x-odd"}
    )
    assert odd.status_code == 400
    assert odd.json()["error"]["code"] == "cors_headers_not_allowed"
    # Both refused, from an unknown origin too: the code names the first, the message all.
    both = client.options(
        "/v1/responses",
        headers={
            **PREFLIGHT,
            "origin": "https://evil.example.com",
            "access-control-request-method": "PUT",
        },
    )
    error = both.json()["error"]
    assert error["code"] == "cors_origin_not_allowed"
    assert "'https://evil.example.com'" in error["message"]
    assert "'PUT'" in error["message"]
