"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.auth import bearer_matches
from gateway.services import Services, services_of

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database, coordination and Rasa are reachable",
    responses={503: {"description": "A dependency is not reachable; the body says which"}},
)
async def readyz(services: Services = Depends(services_of)) -> JSONResponse:
    checks: dict[str, Any] = {}

    async def check(name: str, probe: Any) -> None:
        try:
            result = await asyncio.wait_for(probe, timeout=3)
            checks[name] = "ok" if result is not False else "unavailable"
        except Exception as exc:  # readiness reports, it never raises
            checks[name] = f"error: {type(exc).__name__}"

    await asyncio.gather(
        check("database", services.db.ping()),
        check("coordination", services.coordination.ping()),
        check("rasa", services.bot.is_ready()),
    )
    # The features' own checks (the knowledge base loading, the Slack desk revoked …), added by the app.
    reported: dict[str, str] = {}
    for name, extra in services.readiness.items():
        try:
            state = await asyncio.wait_for(extra.probe(), timeout=3)
        except Exception as exc:  # readiness reports, it never raises
            state = f"error: {type(exc).__name__}"
        (checks if extra.required else reported)[name] = state
    ready = all(v == "ok" for v in checks.values())
    checks.update(reported)  # shown, never a reason to be unready
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (bearer METRICS_TOKEN, or the ADMIN_TOKEN)",
    response_class=Response,
    responses={401: {"description": "No bearer token"}, 403: {"description": "Wrong token, or none is configured"}},
)
async def metrics(services: Services = Depends(services_of),
                  authorization: str | None = Header(default=None)) -> Response:
    # Counters by channel and route tell a stranger how the service is used and when it struggles: scrapers
    # present a token, as Prometheus's `authorization` scrape setting does.
    bearer_matches(authorization, [services.settings.metrics_token, services.settings.admin_token], "METRICS_TOKEN")
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
