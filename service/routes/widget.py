"""The chat widget's two files (/widget.js, /widget.css) and the demo page at `/`.

The files are served by Starlette's StaticFiles, which answers If-None-Match and
If-Modified-Since with 304; they may be embedded from any site (the chat itself is what
CORS guards). The demo page exists only in `wattwise demo`: it carries the demo
resident's token in the page, which is fine for a loopback demo and wrong anywhere else.
Its Content-Security-Policy allows no inline code but its own nonced config, which proves
the widget runs under a strict policy.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from importlib import resources
from string import Template
from uuid import UUID

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

ASSETS = StaticFiles(packages=[("service", "static")])
ASSET_CACHE = "public, max-age=300"  # a new release reaches pages within five minutes


@dataclass(frozen=True)
class DemoPage:
    household_id: UUID
    token: str


async def asset(request: Request) -> Response:
    name = request.url.path.lstrip("/")
    response = await ASSETS.get_response(name, request.scope)
    response.headers["cache-control"] = ASSET_CACHE
    response.headers["cross-origin-resource-policy"] = "cross-origin"
    response.headers["x-content-type-options"] = "nosniff"
    return response


def _script_json(value: object) -> str:
    """JSON that cannot close the <script> element it sits in."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


def demo_route(page: DemoPage) -> Route:
    template = Template(resources.files("service").joinpath("static/demo.html").read_text())

    async def demo(request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        html = template.substitute(
            nonce=nonce,
            household=str(page.household_id),
            config=_script_json({"household": str(page.household_id), "token": page.token}),
        )
        policy = (
            "default-src 'none'; "
            f"script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
            "connect-src 'self'; img-src 'self' data:; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
        return HTMLResponse(
            html,
            headers={
                "content-security-policy": policy,
                "cache-control": "no-store",  # it carries a token
                "referrer-policy": "no-referrer",
            },
        )

    return Route("/", demo, methods=["GET"])
