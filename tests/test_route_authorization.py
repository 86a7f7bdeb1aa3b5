"""No route is left open by mistake: every route of the real app (create_app) refuses an anonymous caller unless it
is on the explicit public list below. HTTP routes must answer 401/403 (the inbox page redirects to its login page);
WebSocket routes must close the socket before accepting it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIWebSocketRoute
from starlette.routing import BaseRoute, Route

from tests.handoff.support import inbox_app, inbox_settings

# Public on purpose, each for a reason.
PUBLIC = {
    "/healthz", "/readyz",  # the orchestrator's probes (no personal data; /metrics takes a token)
    "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",  # the API's description
    "/", "/webchat/{name}", "/channels/webchat/ws",  # the citizens' web chat
    "/channels/rest/webhook",  # trusted integrations (its own optional bearer token, REST_CHANNEL_TOKEN)
    "/api/kb/search",  # public, read-only, rate-limited
    "/inbox/login", "/inbox/static/{name}", "/api/inbox/login",  # how staff get in
    "/studio", "/studio/static/{name}",  # the studio page is its own login form; its data comes from /api/studio
    "/dashboard/static/{name}",  # the dashboard's script and style (the page and its figures need a session)
    "/media/{name}",  # files agents send, for the citizen's channel: refused without a valid, unexpired signature
}
# Channel webhooks verify the vendor's signature or secret themselves (tested per channel).
PUBLIC_PATTERNS = [re.compile(r"^/channels/[a-z_]+/(webhook|status|events)$")]

def routes_of(app: FastAPI) -> list[tuple[str, BaseRoute]]:
    """Every route with its full path, included routers flattened (FastAPI includes them lazily)."""
    found: list[tuple[str, BaseRoute]] = []
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is None:
            found.append((getattr(route, "path", ""), route))
            continue
        for context in contexts():
            original = context.original_route
            found.append((context.path or getattr(original, "path", ""), original))
    return found


def is_public(path: str) -> bool:
    return path in PUBLIC or any(p.match(path) for p in PUBLIC_PATTERNS)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.fixture
async def app(tmp_path: Path):  # type: ignore[no-untyped-def]
    async with inbox_app(inbox_settings(tmp_path)) as parts:
        yield parts


async def test_every_non_public_route_refuses_an_anonymous_caller(app: Any) -> None:
    fastapi_app, _, client = app
    checked, open_routes = 0, []
    for path, route in routes_of(fastapi_app):
        if not isinstance(route, Route) or is_public(path):
            continue
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            response = await client.request(method, concrete(path))
            checked += 1
            refused = response.status_code in (401, 403)
            if response.status_code in (302, 303, 307):  # a staff page sends the browser to its login page
                refused = "/login" in response.headers.get("location", "")
            if not refused:
                open_routes.append(f"{method} {path} → {response.status_code}")
    assert open_routes == []
    assert checked >= 30  # the inbox, work orders and KB editing are all in the walk


async def test_every_non_public_socket_refuses_an_anonymous_caller(app: Any) -> None:
    fastapi_app, _, _ = app
    sockets = [r for _, r in routes_of(fastapi_app)
               if isinstance(r, APIWebSocketRoute) and not is_public(r.path)]
    assert "/api/inbox/ws" in [r.path for r in sockets]
    for route in sockets:
        sent: list[dict[str, Any]] = []
        inbox = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]

        async def receive(inbox: list[dict[str, Any]] = inbox) -> dict[str, Any]:
            return inbox.pop(0)

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": route.path, "raw_path": route.path.encode(), "query_string": b"",
                 "headers": [(b"host", b"testserver")], "scheme": "ws", "server": ("testserver", 80),
                 "client": ("127.0.0.1", 1), "subprotocols": [], "app": fastapi_app, "asgi": {"version": "3.0"}}
        await fastapi_app(scope, receive, send)
        assert sent and sent[0]["type"] == "websocket.close" and sent[0]["code"] == 1008, sent


def test_public_list_names_only_existing_kinds_of_routes() -> None:
    assert all(p.startswith("/") for p in PUBLIC)
