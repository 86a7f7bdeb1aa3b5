"""HTTP route of the Telegram channel: the Bot API's webhook."""

from __future__ import annotations

import json

import structlog
from fastapi import APIRouter, Request, Response

from channels.telegram.connector import TelegramConnector, UnparseableUpdate
from gateway.connectors import Intake, verified_request

log = structlog.get_logger(__name__)


def build_router(connector: TelegramConnector, intake: Intake) -> APIRouter:
    router = APIRouter(tags=["channels"])

    @router.post(
        "/channels/telegram/webhook",
        summary="Telegram's webhook (an Update, JSON); checked against the secret token, acknowledged at once",
        responses={403: {"description": "Missing or wrong X-Telegram-Bot-Api-Secret-Token"}},
        response_class=Response,
    )
    async def telegram_webhook(request: Request) -> Response:
        vendor = await verified_request(connector, request)
        try:
            data = json.loads(vendor.body)
            if not isinstance(data, dict):
                raise UnparseableUpdate("not an object")
            parsed = connector.parse(data)
        except (ValueError, RecursionError, UnparseableUpdate) as exc:
            log.warning("telegram.unparseable", error=str(exc)[:200])
            return Response(status_code=200)  # an error would make Telegram redeliver it forever
        if parsed.message is not None:
            await intake.take(parsed.message, "telegram-turn")
        if parsed.callback_query_id is not None:
            intake.run_soon(connector.answer_callback(parsed.callback_query_id), "telegram-callback-answer")
        return Response(status_code=200)

    return router
