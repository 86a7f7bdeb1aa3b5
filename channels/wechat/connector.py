"""The WeChat official account's four parts, on `wechatpy` (signatures, AES crypto, message parsing, reply XML).

verify: the `signature` (SHA-1 of token, timestamp, nonce) on every request, a timestamp within 5 minutes of ours
(the signature does not cover a plaintext body, so an old query cannot be replayed with another), and, when the
body is encrypted (compatible and safe modes, `encrypt_type=aes`), the `msg_signature` over the ciphertext; then it
is decrypted with WeChatCrypto (the AppId inside the ciphertext must be ours). With WECHAT_ENCODING_AES_KEY set,
WeChat encrypts every push, so one without `encrypt_type=aes` is a downgrade (its body is covered by no signature)
and is refused. Within the 5 minutes, each timestamp + nonce is remembered (through coordination, so every worker
agrees) with a hash of its body: WeChat's own retry (same query, same body) passes on to the pipeline's dedupe,
the same query with another body (a captured query string replayed with a forged plaintext body) is refused.

parse: wechatpy's message and event classes into a normalized message: MsgId is the dedupe key, events (no MsgId)
use FromUserName + CreateTime + Event; text; image and voice (kept as attachments, fetched through media/get; voice
carries WeChat's speech recognition as its text); video; location; link; subscribe (re-subscribing ends an opt-out;
a welcome with the menu), unsubscribe (the channel's own opt-out); menu clicks (CLICK → the payload menu.yml gives
the key); the LOCATION auto-report and VIEW clicks are kept but not answered; TEMPLATESENDJOBFINISH is a template
message's delivery receipt.

render: text with buttons as numbered lines (a URL button as an <a> link), images as links, split under 2,048
bytes; a passive reply (XML in the webhook's answer, encrypted in safe mode) or customer-service messages
(message/custom/send, within 48 hours of the citizen's last message); template messages (message/template/send)
for proactive notices outside that window (`render_proactive`, used by the outbox's enqueue_proactive).

send: JSON to the API with the shared access_token; WeChat's error codes mapped to retry / failed.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import httpx
import structlog
import xmltodict
from wechatpy import events as wx_events
from wechatpy import messages as wx_messages
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import WeChatSigner

from channels.wechat.api import PRODUCTION_BASE_URL, AccessTokens, WeChatApi, WeChatApiError
from channels.wechat.menu import MenuConfig, load_menu
from channels.wechat.settings import WeChatChannelSettings
from gateway.connectors import Forged, RenderContext, Unreadable, VendorRequest
from gateway.coordination import Coordination, InProcessCoordination, LockTimeout
from gateway.message import Attachment, Button, Capabilities, DeliveryResult, InboundMessage, Location, OutboundMessage
from gateway.rendering import LIST_PROMPT, image_as_link, split_text

log = structlog.get_logger(__name__)

MAX_TEXT_BYTES = 2048  # a customer-service or passive text message
MAX_BODY_BYTES = 256 * 1024  # WeChat's pushes are small XML documents
MAX_XML_DEPTH = 6  # the deepest pushes (pic_sysphoto: SendPicsInfo > PicList > item list > item) nest 5 levels
MAX_CLOCK_SKEW_SECONDS = 300  # a push's timestamp may be this far from our clock (WeChat retries within 15 s)
# A timestamp is accepted from MAX_CLOCK_SKEW before it until MAX_CLOCK_SKEW after it: its nonce is remembered that
# long (plus a margin for clocks between workers), after which the timestamp check refuses the query anyway.
NONCE_TTL_SECONDS = 2 * MAX_CLOCK_SKEW_SECONDS + 60
HANDSHAKE_MARK = "handshake"  # remembered for a GET's nonce: its query must not sign a POST's body
REPLY_WINDOW_HOURS = 48
MEDIA_PREFIX = "wechat-media:"
VOICE_MIME = {"amr": "audio/amr", "speex": "audio/speex", "mp3": "audio/mpeg"}
# WeChat's answers that no retry will fix, and those that say "not now".
OUTSIDE_WINDOW = 45015  # response out of time limit (48 h) or the citizen unsubscribed
NOT_SUBSCRIBED = 43004
RETRYABLE = {-1: 5.0, 45009: 60.0, 45011: 10.0, 45047: None}  # busy, daily/minute quotas, too many CS messages
TEMPLATE_STATES = {"success": "delivered", "failed:user block": "failed", "failed: system failed": "failed"}


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


@dataclass(frozen=True)
class WeChatSettings:
    app_id: str
    app_secret: str
    token: str
    encoding_aes_key: str = ""  # empty: plaintext mode only
    api_base_url: str = ""  # a test stand-in of api.weixin.qq.com
    notice_template_id: str = ""  # the template of proactive notices outside the 48-hour window
    menu_path: Path | None = None


@dataclass(frozen=True)
class Envelope:
    """A verified push: the plaintext XML and how to answer it (encrypted, with which nonce)."""

    xml: str
    encrypted: bool
    nonce: str


@dataclass(frozen=True)
class Parsed:
    """What one push means: a message for the pipeline, a template delivery receipt, or nothing to do."""

    message: InboundMessage | None
    account: str = ""  # the account's original id (gh_…): the passive reply's sender
    openid: str = ""
    receipt: tuple[str, str, str | None] | None = None  # (template msgid, delivered/failed, error)


@dataclass
class WeChatConnector:
    settings: WeChatSettings
    coordination: Coordination
    http: httpx.AsyncClient
    own_http: bool = False
    menu: MenuConfig | None = None
    name: str = "wechat"
    channel_account: str = field(init=False)
    # Buttons are numbered lines, images links; max_text_length counts UTF-8 bytes here (WeChat's own measure).
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(
        buttons=False, images=False, max_text_length=MAX_TEXT_BYTES, reply_window_hours=REPLY_WINDOW_HOURS,
        push=True, templates=True, media=True,
    ))

    def __post_init__(self) -> None:
        self.channel_account = self.settings.app_id
        base = (self.settings.api_base_url or PRODUCTION_BASE_URL).rstrip("/")
        self.tokens = AccessTokens(self.settings.app_id, self.settings.app_secret, self.coordination, self.http, base)
        self.api = WeChatApi(self.tokens, self.http, base)
        self.crypto = (
            WeChatCrypto(self.settings.token, self.settings.encoding_aes_key, self.settings.app_id)
            if self.settings.encoding_aes_key else None
        )
        if self.menu is None and self.settings.menu_path is not None and self.settings.menu_path.exists():
            self.menu = load_menu(self.settings.menu_path)
        self.click_payloads = self.menu.click_payloads() if self.menu else {}

    @classmethod
    def from_settings(cls, settings: WeChatChannelSettings, coordination: Coordination | None = None,
                      http: httpx.AsyncClient | None = None) -> WeChatConnector | None:
        """The connector when the account is configured (app id, secret and token), else None.

        Without `coordination` the token is cached in-process until `share` hands it the app's coordination.
        """
        if not (settings.wechat_app_id and settings.wechat_app_secret and settings.wechat_token):
            return None
        if not settings.wechat_encoding_aes_key:
            # DESIGN.md "Trust" vouches for an openid in an encrypted push: in plaintext mode no signature covers
            # the body, and only the timestamp window and the nonce memory stand between a captured query and a
            # forged one.
            log.warning("wechat.plaintext_mode", hint="set WECHAT_ENCODING_AES_KEY and switch the account to safe mode")
        return cls(
            WeChatSettings(
                settings.wechat_app_id, settings.wechat_app_secret, settings.wechat_token,
                settings.wechat_encoding_aes_key, settings.wechat_api_base_url, settings.wechat_notice_template_id,
                settings.wechat_menu_path,
            ),
            coordination or InProcessCoordination(), http or httpx.AsyncClient(timeout=10.0), own_http=http is None,
        )

    def share(self, coordination: Coordination) -> None:
        """Use the app's coordination (Redis when configured): every worker then shares one access_token."""
        self.coordination = coordination
        self.tokens.coordination = coordination

    # -- verify -------------------------------------------------------------------------------------------------------

    def _signed(self, signature: str | None, *parts: str) -> bool:
        if not signature:
            return False
        signer = WeChatSigner()
        signer.add_data(self.settings.token, *parts)
        # As bytes: compare_digest refuses str with non-ASCII characters, and a stranger chooses this one.
        return hmac.compare_digest(signer.signature.encode(), signature.encode("utf-8", "surrogatepass"))

    def handshake(self, query: Mapping[str, str]) -> str:
        """The server-verification GET: echostr back when the signature is ours."""
        if not self._signed(query.get("signature"), query.get("timestamp", ""), query.get("nonce", "")):
            raise Forged("bad signature")
        return query.get("echostr", "")

    async def answer_handshake(self, query: Mapping[str, str]) -> str:
        """`handshake`, and its nonce remembered so the same query cannot sign a plaintext POST's body.

        The GET itself may be replayed (it only echoes what it is sent); its query string, which access logs keep,
        carries the same signature as a plaintext push with that timestamp and nonce would.
        """
        echostr = self.handshake(query)
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if _fresh(timestamp):
            key = self._nonce_key(timestamp, nonce)
            if await self.coordination.get(key) is None:
                await self.coordination.set(key, HANDSHAKE_MARK, NONCE_TTL_SECONDS)
        return echostr

    async def verify(self, request: VendorRequest) -> None:
        """The signatures, the timestamp window, the downgrade and replay checks (`admit`, without keeping the
        decrypted push: the route opens it again)."""
        await self.admit(request.query, request.body)

    async def admit(self, query: Mapping[str, str], body: bytes) -> Envelope:
        """`open`, then the replay check: the push's envelope, or Forged / Unreadable."""
        envelope = self.open(query, body)
        await self.check_replay(query.get("timestamp", ""), query.get("nonce", ""), body)
        return envelope

    def _nonce_key(self, timestamp: str, nonce: str) -> str:
        return f"wechat:nonce:{self.settings.app_id}:{timestamp}:{nonce}"

    async def check_replay(self, timestamp: str, nonce: str, body: bytes) -> None:
        """Remember this timestamp + nonce with a hash of the body; Forged when it came before with another body.

        Call it only for a push `open` accepted (signed, fresh), so strangers cannot fill the memory. WeChat retries
        a push it got no answer to with the same query and body: that passes (the pipeline dedupes it by MsgId and
        answers "success"). The lock makes "read, else write" one step across workers: two deliveries of the same
        nonce arriving together must not both believe they are the first with different bodies.
        """
        key = self._nonce_key(timestamp, nonce)
        digest = hashlib.sha256(body).hexdigest()
        try:
            async with self.coordination.lock(key, hold_seconds=5, wait_seconds=2):
                await self._compare_or_remember(key, digest)
        except LockTimeout:
            # Another worker holds it past 2 s (stalled or gone): decide without it rather than refuse WeChat.
            await self._compare_or_remember(key, digest)

    async def _compare_or_remember(self, key: str, digest: str) -> None:
        seen = await self.coordination.get(key)
        if seen is None:
            await self.coordination.set(key, digest, NONCE_TTL_SECONDS)
        elif seen != digest:  # hashes of public bodies: nothing secret to time
            raise Forged("timestamp and nonce already used with another body (a replayed query)")

    def open(self, query: Mapping[str, str], body: bytes) -> Envelope:
        """Check the signatures and decrypt: the push's plaintext XML. Raises Forged or Unreadable.

        Stateless: the replay check (`check_replay`, or both at once with `admit`) needs coordination.
        """
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if not self._signed(query.get("signature"), timestamp, nonce):
            raise Forged("bad signature")
        # The signature does not cover a plaintext body: a captured query must not be replayable for long.
        if not _fresh(timestamp):
            raise Forged("stale or missing timestamp")
        encrypted = query.get("encrypt_type", "raw").lower() == "aes"
        if self.crypto is not None and not encrypted:
            # With the key configured the account is in compatible or safe mode, where WeChat sends every push with
            # encrypt_type=aes and a msg_signature over the ciphertext. A push without them is a downgrade: nothing
            # signs its body, so a captured query string would carry any body (and get the passive reply).
            raise Forged("not encrypt_type=aes while WECHAT_ENCODING_AES_KEY is set")
        if len(body) > MAX_BODY_BYTES:
            raise Unreadable("body too large")
        try:
            document = xmltodict.parse(body)["xml"]
        except Exception as exc:  # expat errors, no <xml> root, …
            raise Unreadable("not WeChat XML") from exc
        if not isinstance(document, dict):
            raise Unreadable("not WeChat XML")
        if not encrypted:
            if "Encrypt" in document and "MsgType" not in document:
                raise Unreadable("an encrypted body without encrypt_type=aes")
            return Envelope(_utf8(body), False, nonce)
        ciphertext = document.get("Encrypt")
        if not isinstance(ciphertext, str) or not ciphertext:
            # Nothing for msg_signature to cover: as unsigned as a plaintext push (the downgrade in another shape).
            raise Forged("encrypt_type=aes but no Encrypt element")
        if not self._signed(query.get("msg_signature"), timestamp, nonce, ciphertext):
            raise Forged("bad msg_signature")
        if self.crypto is None:
            # Compatible mode carries the plaintext beside the ciphertext; safe mode cannot be read without the key.
            # The plaintext is not bound to the signed ciphertext: as in plaintext mode, the nonce memory guards it.
            if "MsgType" in document:
                return Envelope(_utf8(body), False, nonce)
            raise Unreadable("encrypted push but WECHAT_ENCODING_AES_KEY is not set")
        try:
            xml = self.crypto.decrypt_message({"Encrypt": ciphertext}, query["msg_signature"], timestamp, nonce)
        except (InvalidSignatureException, InvalidAppIdException) as exc:
            raise Forged(type(exc).__name__) from exc
        except Exception as exc:  # a signed ciphertext that does not decrypt: a key mismatch, not an attack
            raise Unreadable("cannot decrypt (check WECHAT_ENCODING_AES_KEY)") from exc
        return Envelope(str(xml), True, nonce)

    # -- parse --------------------------------------------------------------------------------------------------------

    def parse(self, xml: str) -> Parsed:
        """What the push means; Unreadable when it is not a WeChat message we can read.

        wechatpy converts fields lazily (CreateTime, Location_X … on first access), so a field that is not what
        WeChat sends surfaces here as ValueError / TypeError / OverflowError: an unreadable push (400), not a 500.
        """
        try:
            return self._parse(xml)
        except Unreadable:
            raise
        except (ValueError, TypeError, ArithmeticError, OSError, AttributeError, KeyError) as exc:
            raise Unreadable(f"a field WeChat would not send: {type(exc).__name__}") from exc

    def _parse(self, xml: str) -> Parsed:
        try:
            msg = parse_message(xml)
        except Exception as exc:
            raise Unreadable("not a WeChat message") from exc
        if msg is None:
            raise Unreadable("empty message")
        raw = dict(msg._data)
        if _depth(raw) > MAX_XML_DEPTH:  # kept as JSON for audit: a 50,000-deep document would not serialise
            raise Unreadable("nested deeper than WeChat's pushes")
        openid, account = str(msg.source or ""), str(msg.target or "")
        if not openid:
            raise Unreadable("no FromUserName")
        created = int(msg.time or time.time())
        timestamp = datetime.fromtimestamp(created, UTC)
        base: dict[str, Any] = {
            "channel": self.name, "channel_account": self.channel_account, "external_user_id": openid,
            "timestamp": timestamp, "raw": raw,
        }
        if isinstance(msg, wx_events.BaseEvent):
            event = str(raw.get("Event", "")).lower()
            base["external_message_id"] = f"ev:{openid}:{created}:{event}"
            return self._event(msg, event, raw, base, account, openid)
        base["external_message_id"] = str(raw.get("MsgId") or f"msg:{openid}:{created}")
        metadata: dict[str, Any] = {"msg_type": msg.type}
        text = ""
        attachments: list[Attachment] = []
        location = None
        if isinstance(msg, wx_messages.TextMessage):
            text = msg.content or ""
        elif isinstance(msg, wx_messages.ImageMessage):
            attachments.append(Attachment("image", url=MEDIA_PREFIX + str(msg.media_id), mime="image/jpeg"))
            if msg.image:
                metadata["pic_url"] = msg.image
        elif isinstance(msg, wx_messages.VoiceMessage):
            text = (msg.recognition or "").strip()  # WeChat's speech recognition, when the account has it on
            fmt = str(msg.format or "amr").lower()
            attachments.append(Attachment("audio", url=MEDIA_PREFIX + str(msg.media_id),
                                          mime=VOICE_MIME.get(fmt, "audio/amr")))
            metadata["voice_recognized"] = bool(text)
        elif isinstance(msg, wx_messages.VideoMessage | wx_messages.ShortVideoMessage):
            attachments.append(Attachment("video", url=MEDIA_PREFIX + str(msg.media_id), mime="video/mp4"))
        elif isinstance(msg, wx_messages.LocationMessage):
            location = Location(_finite(msg.location_x), _finite(msg.location_y), msg.label or None)
            text = msg.label or ""
        elif isinstance(msg, wx_messages.LinkMessage):
            metadata["link"] = {"title": msg.title, "description": msg.description, "url": msg.url}
            text = "\n".join(p for p in (msg.title, msg.url) if p)
        else:  # a mini-program card and other types the bot cannot read: kept, answered like an empty message
            metadata["unsupported"] = True
        return Parsed(InboundMessage(**base, text=text, attachments=tuple(attachments), location=location,
                                     metadata=metadata), account, openid)

    def _event(self, msg: Any, event: str, raw: dict[str, Any], base: dict[str, Any], account: str, openid: str
               ) -> Parsed:
        metadata: dict[str, Any] = {"event": event}
        text, reply_payload, location = "", None, None
        if event in ("subscribe", "subscribe_scan"):  # the opt-in and the welcome: passive.WeChatEventHook
            if event == "subscribe_scan" and raw.get("EventKey"):
                metadata["scene"] = raw["EventKey"]  # followed by scanning a parameterised QR code
        elif event == "unsubscribe":
            metadata["vendor_opt_out"] = "stop"
        elif event == "click":
            key = str(raw.get("EventKey") or "")
            payload = self.click_payloads.get(key)
            metadata["menu_key"] = key
            if payload is None:
                log.warning("wechat.unknown_menu_key", key=key)
                text = key
            else:
                text, reply_payload = payload, (payload if payload.startswith("/") else None)
        elif event == "location":  # the automatic report on entering the chat: context, not a question
            location = Location(_finite(raw.get("Latitude") or 0), _finite(raw.get("Longitude") or 0), None)
            metadata["silent"] = True
        elif event == "view":
            metadata.update(silent=True, url=raw.get("EventKey"))
        elif event == "templatesendjobfinish":
            status = str(raw.get("Status") or "")
            state = TEMPLATE_STATES.get(status, "failed" if status.startswith("failed") else "delivered")
            receipt = (str(raw.get("MsgID") or raw.get("MsgId") or ""), state,
                       None if state == "delivered" else f"WeChat: {status}")
            return Parsed(None, account, openid, receipt=receipt)
        else:  # scancode, card, mass-send reports …: nothing for the citizen's conversation
            return Parsed(None, account, openid)
        return Parsed(InboundMessage(**base, text=text, reply_payload=reply_payload, location=location,
                                     metadata=metadata), account, openid)

    # -- render -------------------------------------------------------------------------------------------------------

    def text_of(self, outbound: OutboundMessage, language: str) -> str:
        """The message as one WeChat text: buttons as numbered lines (a URL button as a link), images as links."""
        parts = [outbound.text or ""]
        if outbound.buttons:
            parts.append(numbered_lines(outbound.buttons, language))
        if outbound.image:
            parts.append(image_as_link(outbound.image, language))
        if outbound.custom and not (outbound.text or outbound.buttons or outbound.image):
            custom_text = outbound.custom.get("text")
            if isinstance(custom_text, str):
                parts.append(custom_text)
        return "\n".join(p for p in parts if p).strip()

    def render(self, recipient: str, outbound: OutboundMessage, language: str,
               context: RenderContext | None = None) -> list[dict[str, Any]]:
        """Customer-service text messages (allowed within 48 hours of the citizen's last message); outside that
        window a notice goes as a template message (`render_proactive`)."""
        if context is not None and context.template_kind:
            return self.render_proactive(recipient, outbound, language, context.template_kind)
        text = self.text_of(outbound, language)
        return [
            {"kind": "custom", "body": {"touser": recipient, "msgtype": "text", "text": {"content": part}}}
            for part in split_text(text, MAX_TEXT_BYTES, utf8_len)
        ]

    def render_proactive(self, recipient: str, outbound: OutboundMessage, language: str, kind: str
                         ) -> list[dict[str, Any]]:
        """A proactive notice outside the reply window: one template message (message/template/send).

        The template is WECHAT_NOTICE_TEMPLATE_ID (or `custom.template_id`); its fields come from
        `custom.template_data` ({field: value}) when given, else: first = the text, keyword1 = the work-order
        number, keyword2 = its status, keyword3 = the time, remark = a hint that replying opens the chat again.
        `custom.url` is the page a tap opens. Raises ValueError (the message fails visibly) without a template.
        """
        custom = outbound.custom or {}
        template_id = str(custom.get("template_id") or self.settings.notice_template_id)
        if not template_id:
            raise ValueError(f"no WeChat template configured for proactive {kind} (WECHAT_NOTICE_TEMPLATE_ID)")
        data = custom.get("template_data")
        if not isinstance(data, dict):
            text = self.text_of(OutboundMessage(text=outbound.text, image=outbound.image), language)
            found = custom.get("work_order")
            work_order: dict[str, Any] = found if isinstance(found, dict) else {}
            number = custom.get("work_order_number") or work_order.get("number") or ""
            status = custom.get("status") or work_order.get("status") or ""
            data = {
                "first": _clip(text, 200),
                "keyword1": number,
                "keyword2": status,
                "keyword3": datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M"),
                "remark": REMARK.get(language, REMARK["zh"]),
            }
        body: dict[str, Any] = {
            "touser": recipient, "template_id": template_id,
            "data": {key: {"value": str(value)} for key, value in data.items() if value not in (None, "")},
        }
        if custom.get("url"):
            body["url"] = str(custom["url"])
        return [{"kind": "template", "notice": kind, "body": body}]

    def passive_reply(self, parsed: Parsed, text: str, envelope: Envelope) -> str:
        """The webhook's answer carrying the reply itself (encrypted when the push was)."""
        reply = TextReply(source=parsed.account, target=parsed.openid, content=text).render()
        if envelope.encrypted and self.crypto is not None:
            return str(self.crypto.encrypt_message(reply, envelope.nonce, str(int(time.time()))))
        return str(reply)

    # -- send ---------------------------------------------------------------------------------------------------------

    async def send(self, payload: dict[str, Any]) -> DeliveryResult:
        path = "/cgi-bin/message/template/send" if payload.get("kind") == "template" else \
            "/cgi-bin/message/custom/send"
        try:
            data = await self.api.post(path, payload["body"])
        except WeChatApiError as exc:
            return _failure(exc)
        except httpx.HTTPError as exc:
            return DeliveryResult("retry", error=repr(exc)[:500])
        msgid = data.get("msgid")
        return DeliveryResult("sent", external_id=str(msgid) if msgid is not None else None)

    # -- media --------------------------------------------------------------------------------------------------------

    async def fetch_media(self, attachment: dict[str, Any]) -> tuple[str | None, AsyncIterator[bytes]]:
        url = str(attachment.get("url") or "")
        if not url.startswith(MEDIA_PREFIX):
            raise ValueError("not a WeChat media reference")
        mime, chunks = await self.api.media(url[len(MEDIA_PREFIX):])
        # WeChat serves voice as audio/amr but photos sometimes as application/octet-stream: trust the message kind.
        if mime in (None, "application/octet-stream"):
            mime = attachment.get("mime")
        return mime, chunks

    async def close(self) -> None:
        if self.own_http:
            await self.http.aclose()


REMARK = {"zh": "如有疑问，请直接在公众号内回复。", "en": "Questions? Reply in this chat."}


def _fresh(timestamp: str) -> bool:
    """A push's timestamp within MAX_CLOCK_SKEW_SECONDS of our clock (ASCII digits only, and a sane length)."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    return abs(time.time() - int(timestamp)) <= MAX_CLOCK_SKEW_SECONDS


def numbered_lines(buttons: tuple[Button, ...] | list[Button], language: str) -> str:
    """`1. title` lines (the numbered_reply_hook maps "1" back); a button whose payload is a URL is a tappable link."""
    lines = [LIST_PROMPT.get(language, LIST_PROMPT["zh"])]
    for i, button in enumerate(buttons, start=1):
        if button.payload.startswith(("http://", "https://")):
            lines.append(f'{i}. <a href="{escape(button.payload)}">{escape(button.title, quote=False)}</a>')
        else:
            lines.append(f"{i}. {button.title}")
    return "\n".join(lines)


def _finite(value: Any) -> float:
    """A coordinate: NaN and infinity are not places (and PostgreSQL's JSON has no NaN)."""
    number = float(value)
    if not math.isfinite(number):
        raise Unreadable("a coordinate that is not a number")
    return number


def _depth(value: Any) -> int:
    """How deeply dicts and lists nest in a parsed document (iteratively: the document may be very deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if deepest > MAX_XML_DEPTH:
                return deepest
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:  # expat reads the XML declaration's encoding; WeChat sends UTF-8 only
        raise Unreadable("not UTF-8") from exc


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _failure(exc: WeChatApiError) -> DeliveryResult:
    error = f"{exc.errcode}: {exc.errmsg}"[:500]
    if exc.errcode == NOT_SUBSCRIBED:
        return DeliveryResult("failed", error=f"opted_out: {error}")
    if exc.errcode == OUTSIDE_WINDOW:
        return DeliveryResult("failed", error=f"outside_window: {error}")
    if exc.errcode in RETRYABLE:
        return DeliveryResult("retry", retry_after_seconds=RETRYABLE[exc.errcode], error=error)
    if exc.http_status >= 500:
        return DeliveryResult("retry", error=error)
    return DeliveryResult("failed", error=error)
