"""HTTP route of the REST channel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Response

from channels.base import OutboundMessage
from channels.rest.connector import RestConnector, RestRequest
from gateway.services import Services, services_of


def build_router(connector: RestConnector) -> APIRouter:
    router = APIRouter(tags=["channels"])

    @router.post(
        "/channels/rest/webhook",
        summary="Send a citizen's message; get the bot's replies for this turn (Rasa REST style, with meta)",
        responses={401: {"description": "Missing or wrong bearer token"}},
    )
    async def rest_webhook(
        body: RestRequest,
        response: Response,
        authorization: str | None = Header(default=None),
        idempotency_key: str | None = Header(default=None, max_length=256),
        services: Services = Depends(services_of),
    ) -> list[dict[str, Any]]:
        if not connector.verify(authorization):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")
        inbound = connector.parse(body, idempotency_key)
        outcome = await services.pipeline.handle(inbound)
        # While a person has the conversation the bot says nothing (an empty list); the status still travels here.
        response.headers["X-Conversation-Status"] = outcome.status
        items = []
        for reply in outcome.replies:
            payload = reply.payload or {}
            meta = dict(payload.get("meta") or {})
            meta["conversation_status"] = outcome.status
            items.append(connector.render(body.sender, OutboundMessage.from_payload(payload), meta))
        return items

    return router
