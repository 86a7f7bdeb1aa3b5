"""HTTP routes of the SMS channel: Twilio's inbound webhook and its status callback."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request, Response

from channels.sms.connector import EMPTY_TWIML, RECEIPT_STATES, SmsConnector
from gateway.services import Services, services_of

log = structlog.get_logger(__name__)


async def _verified_form(connector: SmsConnector, request: Request) -> dict[str, str]:
    form = await request.form()
    params = {key: str(value) for key, value in form.multi_items()}
    url = connector.signed_url(request.url.path, request.url.query)
    if not connector.verify(url, params, request.headers.get("X-Twilio-Signature")):
        log.warning("sms.forged", path=request.url.path)
        raise HTTPException(status_code=403, detail="bad or missing Twilio signature")
    return params


def build_router(connector: SmsConnector) -> APIRouter:
    router = APIRouter(tags=["channels"])

    @router.post(
        "/channels/sms/webhook",
        summary="Twilio's inbound SMS/MMS webhook (form-encoded, signed); answers empty TwiML at once",
        responses={403: {"description": "Missing or wrong X-Twilio-Signature"}},
        response_class=Response,
    )
    async def sms_webhook(request: Request, services: Services = Depends(services_of)) -> Response:
        params = await _verified_form(connector, request)
        if not (params.get("MessageSid") or params.get("SmsSid")) or not params.get("From"):
            raise HTTPException(status_code=422, detail="MessageSid and From are required")
        received = await services.pipeline.receive(connector.parse(params))
        if not received.duplicate:  # a redelivery was already handed to processing (or to the recovery worker)
            services.spawn(services.pipeline.process(received.conversation_id), name="sms-turn")
        return Response(EMPTY_TWIML, media_type="application/xml")

    @router.post(
        "/channels/sms/status",
        summary="Twilio's delivery receipts: move a sent reply to sent, delivered or failed",
        responses={403: {"description": "Missing or wrong X-Twilio-Signature"}},
        response_class=Response,
    )
    async def sms_status(request: Request, services: Services = Depends(services_of)) -> Response:
        params = await _verified_form(connector, request)
        sid = params.get("MessageSid") or params.get("SmsSid")
        state = RECEIPT_STATES.get((params.get("MessageStatus") or params.get("SmsStatus") or "").lower())
        if sid and state and services.outbox is not None:
            error = params.get("ErrorCode")
            await services.outbox.receipt(connector.name, sid, state, f"Twilio error {error}" if error else None)
        return Response(status_code=204)

    return router
