"""The dashboard page: /dashboard (supervisors and admins), a server-rendered shell; static/dashboard.js reads
/api/reports/summary and draws each figure as a chart with its table beside it (no CDN: plain SVG)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gateway.auth import SUPERVISOR_ROLES, session_of
from gateway.services import services_of
from gateway.static import serve_files

HERE = Path(__file__).resolve().parent
STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
_templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))


def build_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/dashboard")
    async def dashboard_page(request: Request) -> Response:
        info = await session_of(request)
        if info is None:
            return RedirectResponse("/inbox/login", status_code=303)
        if info.agent.role not in SUPERVISOR_ROLES:
            return HTMLResponse("<p>The dashboard is for supervisors and admins.</p>", status_code=403)
        settings = services_of(request).settings
        html = _templates.get_template("dashboard.html").render(
            agent=info.agent, timezone=settings.service_timezone,
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    serve_files(router, "/dashboard/static/{name}", HERE / "static", STATIC)
    return router


router = build_router()
