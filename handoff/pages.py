"""The inbox pages: /inbox/login and /inbox (server-rendered shells; plain JS in static/inbox.js does the rest)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gateway.auth import INBOX_ROLES, session_of
from gateway.services import services_of
from gateway.static import serve_files

HERE = Path(__file__).resolve().parent
STATIC = {"inbox.js": "text/javascript", "inbox.css": "text/css", "login.js": "text/javascript"}
_templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))


def build_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/inbox/login")
    async def login_page(lang: str = "zh") -> HTMLResponse:
        language = lang if lang in ("zh", "en") else "zh"
        return HTMLResponse(_templates.get_template("login.html").render(language=language))

    @router.get("/inbox")
    async def inbox_page(request: Request) -> Response:
        info = await session_of(request)
        if info is None:
            return RedirectResponse("/inbox/login", status_code=303)
        if info.agent.role not in INBOX_ROLES:
            return HTMLResponse("<p>The inbox is for agents and supervisors.</p>", status_code=403)
        settings = services_of(request).settings
        html = _templates.get_template("inbox.html").render(
            agent=info.agent, csrf_token=info.csrf_token, timezone=settings.service_timezone,
            supervisor=info.agent.role in ("supervisor", "admin"),
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    serve_files(router, "/inbox/static/{name}", HERE / "static", STATIC)

    return router


router = build_router()
