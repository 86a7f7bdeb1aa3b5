"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends
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
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(services: Services = Depends(services_of)) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
