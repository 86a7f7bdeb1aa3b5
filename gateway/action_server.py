"""Rasa's custom-action endpoint, served by the gateway: rasa-sdk's executor mounted in the app, so actions reach
the knowledge base and the work-order system built from the same settings."""

from __future__ import annotations

import hmac
from typing import Any

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from rasa_sdk.interfaces import ActionExecutionRejection, ActionMissingDomainException, ActionNotFoundException

from gateway.services import Services, services_of

log = structlog.get_logger(__name__)
router = APIRouter(tags=["bot"])


@router.post(
    "/actions/webhook",
    summary="Run a Rasa custom action (called by the Rasa server)",
    responses={400: {"description": "Bad call or rejected action"}, 401: {"description": "Not our Rasa"},
               404: {"description": "Unknown action"}},
)
async def run_action(request: Request, services: Services = Depends(services_of)) -> JSONResponse:
    # Only our Rasa may run actions (they read, file and rate citizens' work orders): it sends the installation's
    # action token (bot/endpoints.yml); anyone else is refused before the body is read.
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {services.actions_token}".encode()):
        log.warning("action.refused", reason="missing or wrong action token")
        return JSONResponse({"error": "missing or wrong action token"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    if services.actions is None:
        return JSONResponse({"error": "actions are not loaded yet"}, status_code=503)
    try:
        call: Any = await request.json()
    except ValueError:
        return JSONResponse({"error": "body is not JSON"}, status_code=400)
    if not isinstance(call, dict) or "next_action" not in call:
        return JSONResponse({"error": "expected a Rasa action call with next_action"}, status_code=400)
    # Rasa's sender id is our conversation id: every log line of the action carries it.
    with structlog.contextvars.bound_contextvars(conversation_id=call.get("sender_id"), action=call["next_action"]):
        return await _run(services, call)


async def _run(services: Services, call: dict[str, Any]) -> JSONResponse:
    assert services.actions is not None
    try:
        result = await services.actions.run(call)
    except ActionExecutionRejection as exc:
        return JSONResponse({"error": exc.message, "action_name": exc.action_name}, status_code=400)
    except ActionNotFoundException as exc:
        log.error("action.not_found", action=exc.action_name)
        return JSONResponse({"error": exc.message, "action_name": exc.action_name}, status_code=404)
    except ActionMissingDomainException as exc:
        return JSONResponse({"error": exc.message, "action_name": exc.action_name}, status_code=449)
    return JSONResponse(result.model_dump() if result is not None else None)
