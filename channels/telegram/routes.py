"""HTTP route of the Telegram channel: the Bot API's webhook."""

from __future__ import annotations

import json

import structlog
from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response

from channels.telegram.connector import TelegramConnector, UnparseableUpdate
from gateway.services import Services, services_of

log = structlog.get_logger(__name__)


def build_router(connector: TelegramConnector) -> APIRouter:
    router = APIRouter(tags=["channels"])

    @router.post(
        "/channels/telegram/webhook",
        summary="Telegram's webhook (an Update, JSON); checked against the secret token, acknowledged at once",
        responses={403: {"description": "Missing or wrong X-Telegram-Bot-Api-Secret-Token"}},
        response_class=Response,
    )
    async def telegram_webhook(
        request: Request,
        x_telegram_bot_api_secret_token: str | None = Header(default=None),
        services: Services = Depends(services_of),
    ) -> Response:
        if not connector.verify(x_telegram_bot_api_secret_token):
            log.warning("telegram.forged")
            raise HTTPException(status_code=403, detail="bad or missing secret token")
        try:
            data = json.loads(await request.body())
            if not isinstance(data, dict):
                raise UnparseableUpdate("not an object")
            parsed = connector.parse(data)
        except (ValueError, RecursionError, UnparseableUpdate) as exc:
            log.warning("telegram.unparseable", error=str(exc)[:200])
            return Response(status_code=200)  # an error would make Telegram redeliver it forever
        if parsed.message is not None:
            received = await services.pipeline.receive(parsed.message)
            if not received.duplicate:
                services.spawn(services.pipeline.process(received.conversation_id), name="telegram-turn")
        if parsed.callback_query_id is not None:
            services.spawn(connector.answer_callback(parsed.callback_query_id), name="telegram-callback-answer")
        return Response(status_code=200)

    return router
