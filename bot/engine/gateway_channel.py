"""The gateway's input channel for the Rasa server (runs inside the Rasa 3.6 process, Python 3.10).

Rasa's REST channel answers with the bot's messages only. The gateway also needs what the engine understood and
decided in the turn (intent, slots set, the last action), so that it can fill each reply's `meta` and hand a
conversation to a person without a second request to Rasa's HTTP API. This channel takes the same request as the
REST channel plus the gateway's metadata (language, channel, contact_id, conversation_id, original_text,
attachments), stores the metadata on the user message (`tracker.latest_message.metadata`), and answers:

    {"messages": [...Rasa REST-style messages...],
     "intent": {"name": str, "confidence": float} | null,
     "slots_set": {slot: value, ...},
     "latest_action": str | null}

Registered in bot/credentials.yml as `gateway_channel.GatewayInput` (the Rasa process runs with
PYTHONPATH=bot/engine) and served at POST /webhooks/gateway/webhook. Importing it also installs the faster
custom-action response validation (action_result_validation.py).
"""

from __future__ import annotations

import hmac
import os
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from typing import Any

import action_result_validation
import structlog
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = structlog.get_logger()
action_result_validation.install()

ACTION_LISTEN = "action_listen"


def summarize_turn(events: list[dict[str, Any]], message_id: str) -> dict[str, Any]:
    """What happened in one turn, read from the tracker's events (dicts as Rasa serialises them).

    The turn starts at the user event carrying `message_id` (not simply the last user event: another message for
    the same sender may have been handled since) and ends before the next user event.
    """
    start: int | None = None
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if event.get("event") == "user" and event.get("message_id") == message_id:
            start = index
            break
    if start is None:
        return {"intent": None, "slots_set": {}, "latest_action": None}

    parse_data = events[start].get("parse_data") or {}
    intent = parse_data.get("intent") or {}
    intent_out: dict[str, Any] | None = None
    if intent.get("name"):
        intent_out = {"name": intent["name"], "confidence": float(intent.get("confidence") or 0.0)}

    slots_set: dict[str, Any] = {}
    latest_action: str | None = None
    for event in events[start + 1 :]:
        kind = event.get("event")
        if kind == "user":
            break
        if kind == "slot":
            slots_set[event["name"]] = event.get("value")
        elif kind == "action" and event.get("name") and event.get("name") != ACTION_LISTEN:
            latest_action = event["name"]
    return {"intent": intent_out, "slots_set": slots_set, "latest_action": latest_action}


def authorized(header: str | None) -> bool:
    """The gateway's bearer token, when the server was given one (RASA_TOKEN in its environment)."""
    token = os.environ.get("RASA_TOKEN", "")
    if not token:
        return True  # an engine run by hand for debugging; make run and Compose always set it
    return header is not None and hmac.compare_digest(header.encode(), f"Bearer {token}".encode())


class GatewayInput(RestInput):
    """REST-shaped input channel that carries the gateway's metadata in and the turn's outcome out."""

    @classmethod
    def name(cls) -> str:
        return "gateway"

    def get_metadata(self, request: Request) -> dict[str, Any] | None:
        metadata = (request.json or {}).get("metadata")
        return metadata if isinstance(metadata, dict) else None

    def _extract_input_channel(self, req: Request) -> str:
        # The citizen's real channel (sms, telegram, ...) travels in metadata; Rasa records this one.
        return self.name()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        gateway_webhook = Blueprint("gateway_webhook", __name__)

        @gateway_webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @gateway_webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            # Only the gateway may speak for citizens here (it vouches for contact_id): the installation's secret.
            if not authorized(request.headers.get("authorization")):
                return response.json({"error": "missing or wrong bearer token"}, status=401)
            body = request.json
            if not isinstance(body, dict) or not body.get("sender") or not isinstance(body.get("message"), str):
                return response.json(
                    {"error": "expected JSON {'sender': str, 'message': str, 'metadata': {...}}"}, status=400
                )
            sender_id = str(body["sender"])
            text = body["message"]
            metadata = self.get_metadata(request)
            collector = CollectingOutputChannel()
            message = UserMessage(text, collector, sender_id, input_channel=self.name(), metadata=metadata)
            try:
                await on_new_message(message)
            except CancelledError:
                logger.error("gateway_channel.timeout", sender_id=sender_id)  # never the citizen's words in a log
            except Exception:
                logger.exception("gateway_channel.failure", sender_id=sender_id)
                return response.json({"error": "the engine failed to handle the message"}, status=500)

            turn: dict[str, Any] = {"intent": None, "slots_set": {}, "latest_action": None}
            agent = getattr(request.app.ctx, "agent", None)
            if agent is not None and agent.tracker_store is not None:
                tracker = await agent.tracker_store.retrieve(sender_id)
                if tracker is not None:
                    events = [event.as_dict() for event in tracker.events]
                    turn = summarize_turn(events, message.message_id)
            return response.json({"messages": collector.messages, **turn})

        return gateway_webhook
