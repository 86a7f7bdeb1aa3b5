"""HTTP routes of the WeChat channel: the server-verification handshake and the push webhook."""

from __future__ import annotations

import time

import structlog
from fastapi import APIRouter, HTTPException, Request, Response

from channels.wechat.connector import WeChatConnector
from channels.wechat.passive import passive_text
from gateway.connectors import Forged, Intake, Unreadable, read_vendor_request
from gateway.inline_replies import InlineReplies

log = structlog.get_logger(__name__)

SUCCESS = "success"  # what WeChat wants when there is no passive reply (never retried, never shown)


def build_router(connector: WeChatConnector, intake: Intake, passive: InlineReplies, passive_reply_seconds: float
                 ) -> APIRouter:
    router = APIRouter(tags=["channels"])

    @router.get(
        "/channels/wechat/webhook",
        summary="WeChat's server verification: echostr back when signature (token, timestamp, nonce) is ours",
        responses={403: {"description": "Wrong or missing signature"}},
        response_class=Response,
    )
    async def wechat_handshake(request: Request) -> Response:
        try:
            echostr = await connector.answer_handshake(dict(request.query_params))
        except Forged as exc:
            log.warning("wechat.forged_handshake")
            raise HTTPException(status_code=403, detail="bad or missing signature") from exc
        return Response(echostr, media_type="text/plain")

    @router.post(
        "/channels/wechat/webhook",
        summary="WeChat's pushes (XML; plaintext, compatible or safe mode): a passive reply within the budget, "
        "else \"success\" and customer-service messages",
        responses={
            400: {"description": "Not a WeChat message we can read (or encrypted without the AES key)"},
            403: {"description": "Wrong or missing signature / msg_signature, a ciphertext not for this account, "
                  "a plaintext push while the AES key is set, or a replayed query with another body"},
        },
        response_class=Response,
    )
    async def wechat_webhook(request: Request) -> Response:
        started = time.monotonic()
        vendor = await read_vendor_request(request)
        try:
            # Signatures, the timestamp window, the downgrade and replay checks; then decryption.
            await connector.verify(vendor)
            envelope = connector.open(vendor.query, vendor.body)
            parsed = connector.parse(envelope.xml)
        except Forged as exc:
            log.warning("wechat.forged", reason=str(exc))
            raise HTTPException(status_code=403, detail="bad or missing signature") from exc
        except Unreadable as exc:
            log.warning("wechat.unreadable", reason=str(exc))
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        if parsed.receipt is not None:
            msgid, state, error = parsed.receipt
            if msgid:
                await intake.receipt(connector.name, msgid, state, error)
            return Response(SUCCESS, media_type="text/plain")
        if parsed.message is None:
            return Response(SUCCESS, media_type="text/plain")
        received = await intake.receive(parsed.message)
        if received.duplicate:
            # WeChat's retry: the first delivery's turn answers it (passively or by customer-service message).
            return Response(SUCCESS, media_type="text/plain")
        budget = passive_reply_seconds - (time.monotonic() - started)
        waiter = passive.expect(received.message_id, budget)

        async def turn() -> None:
            try:
                await intake.process(received.conversation_id)
            finally:
                passive.turn_finished(received.message_id)

        intake.run_soon(turn(), "wechat-turn")
        claimed = await passive.wait(received.message_id, waiter)
        if claimed is None:
            return Response(SUCCESS, media_type="text/plain")
        text = passive_text(connector, claimed.language, claimed.replies)
        return Response(connector.passive_reply(parsed, text, envelope), media_type="application/xml")

    return router
