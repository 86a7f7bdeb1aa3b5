"""HTTP routes of the phone line: the call's turns, what became of a transfer, a message left after the tone and its
transcript, the call's status, and receipts of the texts sent to callers. Every request is checked with Twilio's
signature before anything in it is read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import Counter
from twilio.twiml.voice_response import VoiceResponse

from channels.sms.connector import receipt_of
from channels.voice.connector import E164, CallTurn, VoiceConnector, text
from gateway.connectors import Intake, verified_request
from gateway.inline_replies import InlineReplies
from gateway.message import InboundMessage, OutboundMessage
from gateway.pipeline import BOT_STATUSES
from gateway.storage import Message

log = structlog.get_logger(__name__)

CALL_ENDED = {"completed", "busy", "failed", "no-answer", "canceled"}
FORGED: dict[int | str, dict[str, Any]] = {403: {"description": "Missing or wrong X-Twilio-Signature"}}


def twiml(document: str) -> Response:
    return Response(document, media_type="application/xml")


def build_router(connector: VoiceConnector, intake: Intake, inline: InlineReplies, turn_seconds: float,
                 open_now: Callable[[datetime], bool]) -> APIRouter:
    router = APIRouter(tags=["channels"])
    calls = Counter("gateway_calls_total", "Phone calls: answered, and how they ended", ["event"],
                    registry=intake.metrics.registry)

    async def form_of(request: Request) -> tuple[dict[str, str], dict[str, str]]:
        vendor = await verified_request(connector, request)
        form = connector.form_of(vendor)
        if not form.get("CallSid"):
            raise HTTPException(status_code=422, detail="CallSid is required")
        return dict(vendor.query), form

    @router.post(
        "/channels/voice/webhook",
        summary="Twilio's voice webhook: a new call is greeted; each spoken or keyed turn is answered in TwiML",
        responses={**FORGED, 422: {"description": "Not a call (no CallSid)"}},
        response_class=Response,
    )
    async def voice_webhook(request: Request) -> Response:
        started = time.monotonic()
        query, form = await form_of(request)
        call = connector.call_turn(query, form)
        keyed = form.get("Digits", "")
        if call.turn == 0 and not form.get("SpeechResult") and not keyed:
            calls.labels("answered").inc()
            return twiml(connector.greeting(call))
        if call.menu and not form.get("SpeechResult") and keyed in ("8", "9"):
            return twiml(connector.greeting(CallTurn(call.turn, "en" if keyed == "9" else "zh")))
        inbound = connector.parse(form, call)
        if inbound is None:
            return twiml(connector.silence(call))
        received = await intake.receive(inbound)
        budget = turn_seconds - (time.monotonic() - started)
        conversation_id, message_id = received.conversation_id, received.message_id
        claimed = None
        if received.duplicate:
            # Twilio asked again (it gave up on our first answer): the first delivery's turn answers this one.
            try:
                await asyncio.wait_for(asyncio.shield(intake.process(conversation_id)), max(budget, 0.1))
            except TimeoutError:
                pass
        else:
            waiter = inline.expect(message_id, budget)

            async def turn() -> None:
                try:
                    await intake.process(conversation_id)
                finally:
                    inline.turn_finished(message_id)

            intake.run_soon(turn(), "voice-turn")
            claimed = await inline.wait(message_id, waiter)
        later = False
        if claimed is not None:
            replies, status = claimed.replies, claimed.status
        else:
            history = await intake.history(conversation_id)
            answered = [m for m in history if m.reply_to_id == message_id and m.direction == "out"]
            mine = next((m for m in history if m.id == message_id), None)
            if received.duplicate:
                replies = answered
            else:  # the budget ran out, or the replies could not be claimed: the outbox texts them
                replies = []
                later = bool(answered) or (mine is not None and mine.turn_state != "done")
            status = await intake.conversation_status(conversation_id) or "bot"
        return twiml(await answer(call, conversation_id, inbound, replies, status, later))

    async def answer(call: CallTurn, conversation_id: str, inbound: InboundMessage, replies: list[Message],
                     status: str, later: bool) -> str:
        language = call.language
        outs = [OutboundMessage.from_payload(m.payload or {}) for m in replies]
        person = status not in BOT_STATUSES  # pending or open: a person has it
        spoken = connector.spoken(outs, language, menus=not person)
        says = list(spoken.says)
        if later:
            says.append(text(language, "later"))
        follow_ups = list(spoken.texted)
        for reply in replies:
            number = ((reply.payload or {}).get("meta") or {}).get("work_order_id")
            if number:  # the order number, to keep: texted as well as read out
                follow_ups.append(OutboundMessage(text=text(language, "order_text", number=str(number))))
        if follow_ups and E164.match(inbound.external_user_id):
            await intake.say(conversation_id, follow_ups, "bot")
        response = VoiceResponse()
        if person:
            for words in says:
                connector.say(response, words, language)
            if connector.settings.transfer_to and open_now(datetime.now(UTC)):
                return connector.transfer(response, call, inbound.channel_account or None)
            return connector.leave_message(response, call, text(language, "leave_message"))
        if not says:
            says = [text(language, "anything_else")]
        return str(connector.gather(response, call, says))

    @router.post(
        "/channels/voice/dial",
        summary="Twilio's answer on a transfer to the centre: nobody answered → the caller leaves a message",
        responses=FORGED, response_class=Response,
    )
    async def voice_dial(request: Request) -> Response:
        query, form = await form_of(request)
        call = connector.call_turn(query, form)
        outcome = (form.get("DialCallStatus") or "").lower()
        log.info("voice.transfer", outcome=outcome, seconds=form.get("DialCallDuration"))
        if outcome in ("completed", "answered"):
            await keep_event(form, f"[call put through: {outcome}, {form.get('DialCallDuration') or '?'}s]",
                             f"{form['CallSid']}:dial")
            return twiml(connector.hang_up())
        return twiml(connector.leave_message(VoiceResponse(), call, text(call.language, "no_answer")))

    @router.post(
        "/channels/voice/recording",
        summary="A message the caller left after the tone: kept with its recording for a person",
        responses=FORGED, response_class=Response,
    )
    async def voice_recording(request: Request) -> Response:
        query, form = await form_of(request)
        call = connector.call_turn(query, form)
        voicemail = connector.recording(form)
        if voicemail is None:  # the caller hung up before saying anything
            return twiml(connector.hang_up())
        await intake.take(voicemail, "voice-voicemail")
        return twiml(connector.message_taken(call))

    @router.post(
        "/channels/voice/transcription",
        summary="Twilio's transcript of a left message, kept beside the recording",
        responses=FORGED, status_code=204, response_class=Response,
    )
    async def voice_transcription(request: Request) -> Response:
        _query, form = await form_of(request)
        transcript = connector.transcription(form)
        if transcript is not None:
            await intake.take(transcript, "voice-transcript")
        return Response(status_code=204)

    @router.post(
        "/channels/voice/status",
        summary="Twilio's call status callback: how a call ended is kept in its conversation",
        responses=FORGED, status_code=204, response_class=Response,
    )
    async def voice_status(request: Request) -> Response:
        _query, form = await form_of(request)
        state = (form.get("CallStatus") or "").lower()
        if state in CALL_ENDED:
            calls.labels(state).inc()
            await keep_event(form, f"[call {state}, {form.get('CallDuration') or '0'}s]", f"{form['CallSid']}:end",
                             only_known=True)
        return Response(status_code=204)

    async def keep_event(form: dict[str, str], words: str, key: str, only_known: bool = False) -> None:
        """How the call went, stored in its conversation for the inbox; never answered."""
        user, verified = connector.caller(form)
        account = form.get("To") or connector.channel_account
        if only_known and await intake.conversation_of(connector.name, account, user) is None:
            return  # a call that never got past the greeting: counted, not a conversation
        await intake.take(InboundMessage(
            channel=connector.name, channel_account=account, external_user_id=user, external_message_id=key,
            text=words, metadata={"call_sid": form.get("CallSid"), "no_reply": "call event"}, raw=form,
            verified_phone=verified,
        ), "voice-event")

    @router.post(
        "/channels/voice/sms-status",
        summary="Twilio's receipts for the texts sent to callers",
        responses=FORGED, status_code=204, response_class=Response,
    )
    async def voice_sms_status(request: Request) -> Response:
        receipt = receipt_of(connector.form_of(await verified_request(connector, request)))
        if receipt is not None:
            await intake.receipt(connector.name, *receipt)
        return Response(status_code=204)

    return router
