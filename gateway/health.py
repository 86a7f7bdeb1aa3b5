"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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
    knowledge = services.knowledge
    checks["knowledge_base"] = "ok" if knowledge is not None and knowledge.ready else "loading"
    ready = all(v == "ok" for v in checks.values())
    # -- Slack desk (channels/slack): reported, never a reason to be unready. A revoked or uninstalled app stops the
    # agents' second desk only; citizens are still answered and handoffs wait in the web inbox.
    if services.slack_desk is not None:
        checks["slack"] = services.slack_desk.state  # "ok", "revoked" or "uninstalled"
    # -- end Slack desk
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
    tokens = [t for t in (services.settings.metrics_token, services.settings.admin_token) if t]
    if not tokens:
        raise HTTPException(403, "set METRICS_TOKEN to scrape metrics")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise HTTPException(401, "send Authorization: Bearer <METRICS_TOKEN>", headers={"WWW-Authenticate": "Bearer"})
    if not any(hmac.compare_digest(given.strip().encode(), t.encode()) for t in tokens):
        raise HTTPException(403, "wrong token")
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
