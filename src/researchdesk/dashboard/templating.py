"""The dashboard's templates (Jinja2, autoescaped) and its two static files, from the package."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from researchdesk.dashboard import charts, formats
from researchdesk.dashboard.markdown import render_answer
from researchdesk.dashboard.usage import points

SECURITY_HEADERS = {
    # Everything the pages use comes from this server; no inline script or style may run.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
ASSETS = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}


@dataclass(frozen=True)
class Asset:
    """A static file of the dashboard, with its tag."""

    body: bytes
    media_type: str
    etag: str


class Templates:
    """The template environment and the static files, loaded once per app."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("researchdesk.dashboard", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            usd=formats.usd, dollars=formats.dollars, when=formats.when, duration=formats.duration
        )
        self.env.globals.update(
            budget_bar=charts.budget,
            columns=charts.columns,
            bars=charts.bars,
            points=points,
            answer=render_answer,
        )
        folder = resources.files("researchdesk.dashboard") / "assets"
        self.assets = {
            name: Asset(body, media_type, f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"')
            for name, media_type in ASSETS.items()
            for body in [(folder / name).read_bytes()]
        }

    def html(self, request: Request, name: str, context: dict[str, Any]) -> str:
        """Template `name` rendered with `context`, and the page's URL helpers."""
        template = self.env.get_template(name)
        return template.render(
            {
                **context,
                "url": lambda route, **params: str(request.url_for(route, **params).path),
                "asset": lambda file: (
                    f"{request.url_for('dashboard_asset', name=file).path}"
                    f"?v={self.assets[file].etag.strip(chr(34))}"
                ),
            }
        )

    def page(
        self, request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> HTMLResponse:
        """A whole page, with the dashboard's security headers."""
        return HTMLResponse(
            self.html(request, name, context), status_code=status_code, headers=SECURITY_HEADERS
        )

    def fragment(self, body: str, etag: str, *, final: bool) -> Response:
        """A piece of a page for the live updates; `final` tells the script to stop polling."""
        headers = {**SECURITY_HEADERS, "ETag": etag, "X-Live-Final": "1" if final else "0"}
        return HTMLResponse(body, headers=headers)


def tag_of(body: str) -> str:
    """A strong entity tag for generated text."""
    return f'"{hashlib.blake2b(body.encode(), digest_size=16).hexdigest()}"'


async def get_templates(request: Request) -> Templates:
    """The templates `install` loaded for this app."""
    templates: Templates = request.app.state.dashboard_templates
    return templates


TemplatesDep = Annotated[Templates, Depends(get_templates)]
