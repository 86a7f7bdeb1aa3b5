"""The Telegram channel's four parts, on aiogram 3.

verify: the X-Telegram-Bot-Api-Secret-Token header against TELEGRAM_WEBHOOK_SECRET (constant-time). parse: an
Update (validated by aiogram's own types) into a normalized message: update_id is the dedupe key; a pressed inline
button (callback query) becomes its payload; `/start <param>` a greeting with the deep-link parameter; photos,
voice notes, documents become attachments (fetched later through getFile), a location a Location, a contact the
user shared of themselves a verified phone; blocking the bot is the channel's own unsubscribe. render: text (split
at 4,096 characters on sentence boundaries) with buttons as an inline keyboard, images as photos. send: aiogram's
Bot (TELEGRAM_API_BASE_URL as a custom TelegramAPIServer when set), errors mapped to retry / failed.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Update
from pydantic import ValidationError

from gateway.clock import utc
from gateway.connectors import Forged, RenderContext, VendorRequest
from gateway.message import Attachment, Capabilities, DeliveryResult, InboundMessage, Location, OutboundMessage
from gateway.rendering import image_as_link, split_text

MAX_TEXT = 4096
MAX_CAPTION = 1024
CALLBACK_DATA_BYTES = 64  # Telegram's limit; longer payloads travel as the button's number
FILE_PREFIX = "telegram-file:"


@dataclass(frozen=True)
class TelegramSettings:
    bot_token: str
    webhook_secret: str
    api_base_url: str = ""  # a local Bot API server or a test stand-in


class UnparseableUpdate(ValueError):
    """Not an update we understand (answered 200 anyway: Telegram would otherwise redeliver it forever)."""


@dataclass(frozen=True)
class ParsedUpdate:
    message: InboundMessage | None
    callback_query_id: str | None = None


class TelegramConnector:
    name = "telegram"
    capabilities = Capabilities(buttons=True, images=True, max_text_length=MAX_TEXT, push=True, media=True)

    def __init__(self, settings: TelegramSettings) -> None:
        self.settings = settings
        self.channel_account = settings.bot_token.split(":", 1)[0]  # the bot's id
        api = TelegramAPIServer.from_base(settings.api_base_url) if settings.api_base_url else PRODUCTION
        self.bot = Bot(settings.bot_token, session=AiohttpSession(api=api))

    # -- verify -------------------------------------------------------------------------------------------------------

    async def verify(self, request: VendorRequest) -> None:
        """The secret Telegram sends in X-Telegram-Bot-Api-Secret-Token (set with setWebhook)."""
        expected = self.settings.webhook_secret
        given = request.headers.get("x-telegram-bot-api-secret-token")
        if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise Forged("bad or missing secret token")

    # -- parse --------------------------------------------------------------------------------------------------------

    def parse(self, data: dict[str, Any]) -> ParsedUpdate:
        try:
            update = Update.model_validate(data)
        except ValidationError as exc:
            raise UnparseableUpdate(str(exc.errors()[:1])) from exc
        ext = str(update.update_id)
        if update.callback_query is not None:
            query = update.callback_query
            chat = query.message.chat.id if query.message is not None else query.from_user.id
            payload = query.data or ""
            metadata: dict[str, Any] = {"display_name": query.from_user.full_name}
            text = payload
            reply_payload: str | None = payload
            if payload.startswith("#") and payload[1:].isascii() and payload[1:].isdigit():  # too long for callback
                metadata["button_index"] = int(payload[1:])
                text, reply_payload = payload[1:], None
            message = InboundMessage(
                channel=self.name, channel_account=self.channel_account, external_user_id=str(chat),
                external_message_id=ext, text=text, reply_payload=reply_payload, metadata=metadata, raw=data,
            )
            return ParsedUpdate(message, callback_query_id=query.id)
        if update.my_chat_member is not None:
            member = update.my_chat_member
            status = member.new_chat_member.status
            vendor = "stop" if status == "kicked" else "start" if status == "member" else None
            if vendor is None:
                return ParsedUpdate(None)
            return ParsedUpdate(InboundMessage(
                channel=self.name, channel_account=self.channel_account, external_user_id=str(member.chat.id),
                external_message_id=ext, text="", metadata={"vendor_opt_out": vendor, "event": f"bot_{status}"},
                raw=data,
            ))
        msg = update.message
        if msg is None:
            return ParsedUpdate(None)  # edits, channel posts, polls …: nothing for the bot
        text = msg.text or msg.caption or ""
        metadata = {}
        if msg.from_user is not None:
            metadata["display_name"] = msg.from_user.full_name
            if msg.from_user.language_code:
                metadata["telegram_language"] = msg.from_user.language_code
        reply_payload = None
        if msg.text and (msg.text == "/start" or msg.text.startswith("/start ")):
            parameter = msg.text[len("/start"):].strip()
            reply_payload = "/greet"  # a new chat starts with a greeting; the deep link travels as metadata
            if parameter:
                metadata["start_parameter"] = parameter
        attachments: list[Attachment] = []
        if msg.photo:
            biggest = max(msg.photo, key=lambda p: p.width * p.height)
            attachments.append(Attachment("image", url=FILE_PREFIX + biggest.file_id, mime="image/jpeg"))
        if msg.voice is not None:
            attachments.append(Attachment("audio", url=FILE_PREFIX + msg.voice.file_id,
                                          mime=msg.voice.mime_type or "audio/ogg"))
        if msg.audio is not None:
            attachments.append(Attachment("audio", url=FILE_PREFIX + msg.audio.file_id, mime=msg.audio.mime_type,
                                          name=msg.audio.file_name))
        if msg.video is not None:
            attachments.append(Attachment("video", url=FILE_PREFIX + msg.video.file_id, mime=msg.video.mime_type))
        if msg.document is not None:
            attachments.append(Attachment("file", url=FILE_PREFIX + msg.document.file_id,
                                          mime=msg.document.mime_type, name=msg.document.file_name))
        location = None
        if msg.location is not None:
            location = Location(msg.location.latitude, msg.location.longitude,
                                msg.venue.title if msg.venue is not None else None)
        verified_phone = None
        if msg.contact is not None:
            metadata["shared_phone"] = msg.contact.phone_number
            # Only the user's own contact in a private chat is verified (Telegram checked the number and the chat is
            # that user's alone); someone else's contact, or one shared in a group, is just data.
            if (msg.from_user is not None and msg.contact.user_id == msg.from_user.id
                    and msg.chat.type == "private"):
                verified_phone = msg.contact.phone_number
        return ParsedUpdate(InboundMessage(
            channel=self.name,
            channel_account=self.channel_account,
            external_user_id=str(msg.chat.id),
            external_message_id=ext,
            text=text,
            timestamp=utc(msg.date),
            attachments=tuple(attachments),
            location=location,
            reply_payload=reply_payload,
            metadata=metadata,
            raw=data,
            verified_phone=verified_phone,
        ))

    # -- render -------------------------------------------------------------------------------------------------------

    def render(self, recipient: str, outbound: OutboundMessage, language: str,
               context: RenderContext | None = None) -> list[dict[str, Any]]:
        number = recipient.removeprefix("-")
        chat_id = int(recipient) if number.isascii() and number.isdigit() else recipient
        buttons = [
            [b.title[:64], b.payload if len(b.payload.encode()) <= CALLBACK_DATA_BYTES else f"#{i}"]
            for i, b in enumerate(outbound.buttons, start=1)
        ]
        text = outbound.text or ""
        if outbound.custom and not (text or outbound.image or buttons):
            custom_text = outbound.custom.get("text")
            text = custom_text if isinstance(custom_text, str) else ""
        payloads: list[dict[str, Any]] = []
        if outbound.image and outbound.image.startswith(("http://", "https://")):
            if len(text) <= MAX_CAPTION:  # one photo with its caption and keyboard
                return [{"method": "sendPhoto", "chat_id": chat_id, "photo": outbound.image,
                         "caption": text or None, "buttons": buttons or None}]
            payloads.append({"method": "sendPhoto", "chat_id": chat_id, "photo": outbound.image, "caption": None,
                             "buttons": None})
        elif outbound.image:  # not something Telegram can fetch: a link
            text = "\n".join(t for t in (text, image_as_link(outbound.image, language)) if t)
        parts = split_text(text, MAX_TEXT) if text.strip() else (["👇"] if buttons else [])
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            payloads.append({"method": "sendMessage", "chat_id": chat_id, "text": part,
                             "buttons": (buttons or None) if last else None})
        return payloads

    # -- send ---------------------------------------------------------------------------------------------------------

    async def send(self, payload: dict[str, Any]) -> DeliveryResult:
        markup = None
        if payload.get("buttons"):
            markup = InlineKeyboardMarkup(inline_keyboard=[
                [InlineKeyboardButton(text=title, callback_data=data)] for title, data in payload["buttons"]
            ])
        try:
            if payload["method"] == "sendPhoto":
                sent = await self.bot.send_photo(payload["chat_id"], photo=payload["photo"],
                                                 caption=payload.get("caption"), reply_markup=markup)
            else:
                sent = await self.bot.send_message(payload["chat_id"], payload["text"], reply_markup=markup)
        except TelegramRetryAfter as exc:
            return DeliveryResult("retry", retry_after_seconds=float(exc.retry_after), error="429 retry after")
        except TelegramForbiddenError as exc:  # the citizen blocked the bot: no use retrying
            return DeliveryResult("failed", error=f"opted_out: {exc.message}"[:500])
        except (TelegramServerError, TelegramNetworkError) as exc:
            return DeliveryResult("retry", error=f"{type(exc).__name__}: {exc.message}"[:500])
        except TelegramBadRequest as exc:
            return DeliveryResult("failed", error=f"bad request: {exc.message}"[:500])
        except TelegramAPIError as exc:
            return DeliveryResult("failed", error=f"{type(exc).__name__}: {exc.message}"[:500])
        return DeliveryResult("sent", external_id=f"{payload['chat_id']}:{sent.message_id}")

    async def answer_callback(self, callback_query_id: str) -> None:
        """Stop the button's spinner (Telegram shows it until the press is answered)."""
        try:
            await self.bot.answer_callback_query(callback_query_id)
        except TelegramAPIError:
            pass  # too late or already answered: the press itself is stored and processed anyway

    # -- media --------------------------------------------------------------------------------------------------------

    async def fetch_media(self, attachment: dict[str, Any]) -> tuple[str | None, AsyncIterator[bytes]]:
        url = str(attachment.get("url") or "")
        if not url.startswith(FILE_PREFIX):
            raise ValueError("not a Telegram file reference")
        file = await self.bot.get_file(url[len(FILE_PREFIX):])
        if not file.file_path:
            raise ValueError("Telegram gave no file path")
        chunks = self.bot.session.stream_content(
            url=self.bot.session.api.file_url(self.bot.token, file.file_path), timeout=60, chunk_size=65536,
            raise_for_status=True,
        )
        return attachment.get("mime"), chunks

    async def set_webhook(self, url: str) -> bool:
        return bool(await self.bot.set_webhook(
            url, secret_token=self.settings.webhook_secret,
            allowed_updates=["message", "callback_query", "my_chat_member"],
        ))

    async def close(self) -> None:
        await self.bot.session.close()
