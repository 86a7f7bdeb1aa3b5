"""HTTP route of the REST channel. The caller is checked (token, then rate) before the body is parsed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from channels.rest.connector import RestConnector, RestRequest
from gateway.connectors import Intake, verified_request
from gateway.message import OutboundMessage


def build_router(connector: RestConnector, intake: Intake, rate_per_minute: int = 0) -> APIRouter:
    router = APIRouter(tags=["channels"])

    @router.post(
        "/channels/rest/webhook",
        summary="Send a citizen's message; get the bot's replies for this turn (Rasa REST style, with meta)",
        responses={401: {"description": "Missing or wrong bearer token"},
                   429: {"description": "Too many turns from this address"}},
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": RestRequest.model_json_schema()}}}},
    )
    async def rest_webhook(
        request: Request,
        response: Response,
        authorization: str | None = Header(default=None),  # documented here; checked by the connector
        idempotency_key: str | None = Header(default=None, max_length=256),
    ) -> list[dict[str, Any]]:
        vendor = await verified_request(connector, request, refused=401)
        # An open channel (no token) is held to a rate per address; a trusted integration speaks for many citizens.
        if rate_per_minute and not connector.token:
            if not await intake.allow(f"rest:{vendor.client}", rate_per_minute, 60):
                raise HTTPException(status_code=429, detail="too many turns from this address; slow down",
                                    headers={"Retry-After": "60"})
        try:
            body = RestRequest.model_validate_json(vendor.body)
        except ValidationError as exc:
            # The same 422 shape as every other route's body (never echoing the input back).
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_input=False)]
            raise RequestValidationError(errors) from None
        outcome = await intake.handle(connector.parse(body, idempotency_key))
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
