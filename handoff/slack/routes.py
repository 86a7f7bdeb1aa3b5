"""`POST /handoff/slack/events`: Slack's events and interactions, verified with the signing secret.

The order is the trust order: the signature first (401: nothing a stranger wrote is parsed), then the body must be
something Slack sends (400), then Bolt dispatches it. Every signed request that gets that far is acknowledged with a
2xx, also those no listener wants (Slack retries the others and turns off an app's events when most fail); a stopped
desk (token revoked, app uninstalled) acknowledges without handing anything to Bolt, which would call Slack.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, HTTPException, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.request.internals import parse_body

from handoff.slack.desk import SlackDesk

log = structlog.get_logger(__name__)


class Malformed(ValueError):
    """Signed, but not a body Slack sends: answered 400."""


def parse_payload(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The request as Bolt will read it (its own parser), checked for the shape Bolt and the desk rely on.

    Events API deliveries are JSON with a `type` (`event_callback` carries an `event` object with its own `type`);
    interactions are a form whose `payload` is such JSON; slash commands and Slack's SSL check are plain forms.
    """
    try:
        text = body.decode("utf-8")
        media_type = (content_type or "").split(";")[0].strip().lower() or None
        payload = parse_body(text, media_type)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, a 5,000-digit number, "[[[[…" nested too deep
        raise Malformed(f"not JSON or form data: {str(exc)[:200]}") from exc
    if not isinstance(payload, dict):
        raise Malformed("not a JSON object")
    kind = payload.get("type")
    if kind is None:
        if "command" in payload or "ssl_check" in payload:
            return payload
        raise Malformed("no type")
    if not isinstance(kind, str):
        raise Malformed("type is not a string")
    if kind == "event_callback":
        event = payload.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise Malformed("event_callback without an event type")
    return payload


def build_router() -> APIRouter:
    """The desk is built in the app's start-up (it needs the database); the route finds it in the services."""
    router = APIRouter(tags=["channels"])

    @router.post(
        "/handoff/slack/events",
        summary="Slack events and interactions (signed by Slack); every signed one is acknowledged",
        responses={400: {"description": "signed, but not JSON or form data Slack sends"},
                   401: {"description": "missing, wrong or stale Slack signature"},
                   503: {"description": "starting up"}},
    )
    async def slack_events(request: Request) -> Response:
        desk: SlackDesk | None = getattr(request.app.state.services, "slack_desk", None)
        if desk is None:
            raise HTTPException(status_code=503, detail="the Slack desk is starting")
        body = await request.body()  # Starlette keeps it: Bolt's adapter reads the same bytes
        if not desk.signed(body, request.headers.get("x-slack-request-timestamp"),
                           request.headers.get("x-slack-signature")):
            raise HTTPException(status_code=401, detail="missing, wrong or stale Slack signature")
        try:
            payload = parse_payload(body, request.headers.get("content-type"))
        except Malformed as exc:
            log.warning("slack.malformed", reason=str(exc))
            raise HTTPException(status_code=400, detail=f"not a Slack event or interaction: {exc}") from exc
        if desk.stopped and payload.get("type") != "url_verification":
            return Response(status_code=200)
        try:
            return await AsyncSlackRequestHandler(desk.app).handle(request)
        except Exception as exc:  # noqa: BLE001 - Bolt dispatches safely; this is it failing to build its request
            log.warning("slack.unreadable", type=payload.get("type"), error=repr(exc))
            raise HTTPException(status_code=400, detail="not a Slack event or interaction this desk can read") \
                from exc

    return router
