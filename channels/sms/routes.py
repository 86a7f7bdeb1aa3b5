"""HTTP routes of the SMS channel: Twilio's inbound webhook and its status callback."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from channels.sms.connector import EMPTY_TWIML, SmsConnector, receipt_of
from gateway.connectors import Intake, verified_request


def build_router(connector: SmsConnector, intake: Intake) -> APIRouter:
    router = APIRouter(tags=["channels"])

    @router.post(
        "/channels/sms/webhook",
        summary="Twilio's inbound SMS/MMS webhook (form-encoded, signed); answers empty TwiML at once",
        responses={403: {"description": "Missing or wrong X-Twilio-Signature"}},
        response_class=Response,
    )
    async def sms_webhook(request: Request) -> Response:
        params = connector.form_of(await verified_request(connector, request))
        if not (params.get("MessageSid") or params.get("SmsSid")) or not params.get("From"):
            raise HTTPException(status_code=422, detail="MessageSid and From are required")
        await intake.take(connector.parse(params), "sms-turn")
        return Response(EMPTY_TWIML, media_type="application/xml")

    @router.post(
        "/channels/sms/status",
        summary="Twilio's delivery receipts: move a sent reply to sent, delivered or failed",
        responses={403: {"description": "Missing or wrong X-Twilio-Signature"}},
        response_class=Response,
    )
    async def sms_status(request: Request) -> Response:
        receipt = receipt_of(connector.form_of(await verified_request(connector, request)))
        if receipt is not None:
            await intake.receipt(connector.name, *receipt)
        return Response(status_code=204)

    return router
