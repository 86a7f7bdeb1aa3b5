"""`POST /channels/slack/events`: Slack's events and interactions, verified by Bolt with the signing secret."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler

from channels.slack.desk import SlackDesk


def build_router() -> APIRouter:
    """The desk is built in the app's start-up (it needs the database); the route finds it in the services."""
    router = APIRouter(tags=["channels"])

    @router.post(
        "/channels/slack/events",
        summary="Slack events and interactions (signed by Slack)",
        responses={400: {"description": "not JSON or form data Slack sends"},
                   401: {"description": "missing or wrong Slack signature"}, 503: {"description": "starting up"}},
    )
    async def slack_events(request: Request) -> Response:
        desk: SlackDesk | None = getattr(request.app.state.services, "slack_desk", None)
        if desk is None:
            raise HTTPException(status_code=503, detail="the Slack desk is starting")
        try:
            return await AsyncSlackRequestHandler(desk.app).handle(request)
        except ValueError as exc:  # Bolt parses the body before anything else; broken JSON is the sender's fault
            raise HTTPException(status_code=400, detail=f"not a Slack event or interaction: {exc}") from exc

    return router
