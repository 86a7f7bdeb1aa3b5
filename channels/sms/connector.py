"""The SMS channel's four parts, on the `twilio` SDK.

verify: Twilio's signature (X-Twilio-Signature) with the SDK's RequestValidator, over the address Twilio was given
(PUBLIC_BASE_URL + path). parse: Twilio's form fields into a normalized message (MessageSid is the dedupe key; MMS
media as attachments; Twilio's own opt-out handling, OptOutType, as an event). render: one text per SMS message,
buttons as a numbered list, images as links, long text split on sentence boundaries within SMS_MAX_SEGMENTS
segments counted as the network does (GSM-7 / UCS-2). send: the SDK's REST client (`messages.create_async`),
pointed at TWILIO_API_BASE_URL when set, with a status callback for receipts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from channels.sms.segments import sms_segments
from gateway.connectors import Forged, RenderContext, VendorRequest
from gateway.message import Attachment, Capabilities, DeliveryResult, InboundMessage, OutboundMessage
from gateway.rendering import plain_text, split_text

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# Twilio concatenates up to 10 segments reliably; longer replies go as several messages, split between sentences.
SMS_MAX_SEGMENTS = 10
# Twilio's error for a recipient who replied STOP to our number: failed for good, and an opt-out of our own.
TWILIO_UNSUBSCRIBED = 21610
# Twilio's message states → ours (the outbox's).
RECEIPT_STATES = {
    "accepted": "queued", "scheduled": "queued", "queued": "queued", "sending": "queued",
    "sent": "sent", "delivered": "delivered", "read": "delivered",
    "failed": "failed", "undelivered": "failed", "canceled": "failed",
}
TWILIO_API_HOST = "api.twilio.com"


def receipt_of(form: Mapping[str, str]) -> tuple[str, str, str | None] | None:
    """A Twilio status callback for a sent text as (message sid, our delivery state, error), or None when it tells
    nothing the outbox tracks."""
    sid = form.get("MessageSid") or form.get("SmsSid")
    state = RECEIPT_STATES.get((form.get("MessageStatus") or form.get("SmsStatus") or "").lower())
    if not (sid and state):
        return None
    error = form.get("ErrorCode")
    return sid, state, f"Twilio error {error}" if error else None


MEDIA_KINDS = {"image": "image", "audio": "audio", "video": "video"}


@dataclass(frozen=True)
class SmsSettings:
    account_sid: str
    auth_token: str
    from_number: str
    public_base_url: str
    api_base_url: str = ""  # a staging or test stand-in of Twilio's REST API
    status_path: str = "/channels/sms/status"  # where Twilio reports what became of a sent text


class RateLimited(TwilioException):
    """Twilio answered 429; carries its Retry-After (the SDK's own exception drops the headers)."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__(f"rate limited (Retry-After {retry_after})")
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class HttpxTwilioClient(AsyncHttpClient):
    """The SDK's async HTTP client interface on httpx: one pooled client, an optional other API host, 429s kept."""

    def __init__(self, http: httpx.AsyncClient, api_base_url: str = "", timeout: float = 15.0) -> None:
        super().__init__(logging.getLogger("twilio.http"), True, timeout)
        self.http = http
        self.api_base = urlsplit(api_base_url) if api_base_url else None

    def rewrite(self, url: str) -> str:
        """The address on TWILIO_API_BASE_URL, when one is set (a staging or test stand-in)."""
        return self._rewrite(url)

    def _rewrite(self, url: str) -> str:
        if self.api_base is None:
            return url
        parts = urlsplit(url)
        prefix = self.api_base.path.rstrip("/")
        return urlunsplit((self.api_base.scheme, self.api_base.netloc, prefix + parts.path, parts.query, ""))

    async def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        response = await self.http.request(
            method.upper(), self._rewrite(url), params=params, data=data, headers=headers,  # type: ignore[arg-type]
            auth=auth, timeout=timeout or self.timeout, follow_redirects=allow_redirects,
        )
        if response.status_code == 429:
            raise RateLimited(retry_after_seconds(response.headers.get("Retry-After")))
        return TwilioResponse(response.status_code, response.text, dict(response.headers))


class SmsConnector:
    name = "sms"
    capabilities = Capabilities(buttons=False, images=False, max_text_length=1600, push=True, media=True)

    def __init__(self, settings: SmsSettings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.channel_account = settings.from_number
        self.validator = RequestValidator(settings.auth_token)
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(limits=httpx.Limits(max_connections=50))
        self.twilio_http = HttpxTwilioClient(self.http, settings.api_base_url)
        self.client = Client(settings.account_sid, settings.auth_token, http_client=self.twilio_http)

    # -- verify -------------------------------------------------------------------------------------------------------

    def signed_url(self, path: str, query: str = "") -> str:
        """The address Twilio signed: the public base URL (behind a proxy) plus the request's path and query."""
        url = self.settings.public_base_url.rstrip("/") + path
        return f"{url}?{query}" if query else url

    @staticmethod
    def form_of(request: VendorRequest) -> dict[str, str]:
        """The form Twilio posted (application/x-www-form-urlencoded, UTF-8)."""
        return dict(parse_qsl(request.body.decode("utf-8", errors="replace"), keep_blank_values=True))

    async def verify(self, request: VendorRequest) -> None:
        """Twilio's signature (X-Twilio-Signature) over the address it was given and the form, by the SDK."""
        signature = request.headers.get("x-twilio-signature")
        url = self.signed_url(request.path, request.raw_query)
        if not signature or not self.settings.auth_token or not self.validator.validate(
            url, self.form_of(request), signature
        ):
            raise Forged("bad or missing Twilio signature")

    # -- parse --------------------------------------------------------------------------------------------------------

    def parse(self, form: Mapping[str, str]) -> InboundMessage:
        sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid")
        sender = form.get("From", "")
        attachments = []
        try:
            count = int(form.get("NumMedia", "0") or 0)
        except ValueError:
            count = 0
        for i in range(min(count, 10)):
            url = form.get(f"MediaUrl{i}")
            if not url:
                continue
            mime = form.get(f"MediaContentType{i}") or None
            kind = MEDIA_KINDS.get((mime or "").split("/", 1)[0], "file")
            attachments.append(Attachment(kind=kind, url=url, mime=mime))  # type: ignore[arg-type]
        metadata: dict[str, Any] = {}
        opt_out_type = (form.get("OptOutType") or "").lower()
        if opt_out_type in ("stop", "start"):
            metadata["vendor_opt_out"] = opt_out_type
        return InboundMessage(
            channel=self.name,
            channel_account=form.get("To") or self.channel_account,
            external_user_id=sender,
            external_message_id=sid,
            text=form.get("Body", ""),
            attachments=tuple(attachments),
            metadata=metadata,
            raw=dict(form),
            verified_phone=sender or None,  # the carrier vouches for the sender's number (on a request Twilio signed)
        )

    # -- render -------------------------------------------------------------------------------------------------------

    def render(self, recipient: str, outbound: OutboundMessage, language: str,
               context: RenderContext | None = None) -> list[dict[str, Any]]:
        text = plain_text(outbound, language, buttons=False, images=False)
        if not text:
            return []
        parts = split_text(text, SMS_MAX_SEGMENTS, lambda t: sms_segments(t).segments)
        return [{"to": recipient, "from": self.channel_account, "body": part} for part in parts]

    # -- send ---------------------------------------------------------------------------------------------------------

    async def send(self, payload: dict[str, Any]) -> DeliveryResult:
        callback = self.signed_url(self.settings.status_path) if self.settings.public_base_url else None
        try:
            message = await self.client.messages.create_async(
                to=payload["to"], from_=payload.get("from") or self.channel_account, body=payload["body"],
                status_callback=callback,
            )
        except RateLimited as exc:
            return DeliveryResult("retry", retry_after_seconds=exc.retry_after, error="429 rate limited")
        except TwilioRestException as exc:
            error = f"{exc.status} {exc.code}: {exc.msg}"[:500]
            if exc.code == TWILIO_UNSUBSCRIBED:
                return DeliveryResult("failed", error=f"opted_out: {error}")
            if exc.status >= 500 or exc.status in (408, 409):
                return DeliveryResult("retry", error=error)
            return DeliveryResult("failed", error=error)
        except (httpx.HTTPError, TwilioException) as exc:
            return DeliveryResult("retry", error=repr(exc)[:500])
        return DeliveryResult("sent", external_id=message.sid)

    # -- media --------------------------------------------------------------------------------------------------------

    async def fetch_media(self, attachment: dict[str, Any]) -> tuple[str | None, AsyncIterator[bytes]]:
        """MMS media and call recordings sit behind Twilio's auth (HTTP basic with the account's credentials)."""
        url = str(attachment["url"])
        if urlsplit(url).hostname == TWILIO_API_HOST:  # on TWILIO_API_BASE_URL when one is set
            url = self.twilio_http.rewrite(url)
        request = self.http.build_request("GET", url)
        response = await self.http.send(
            request, stream=True, auth=(self.settings.account_sid, self.settings.auth_token), follow_redirects=True,
        )
        if response.status_code != 200:
            await response.aclose()
            raise httpx.HTTPStatusError(f"media {response.status_code}", request=request, response=response)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            finally:
                await response.aclose()

        return response.headers.get("content-type"), chunks()

    async def close(self) -> None:
        if self._own_http:
            await self.http.aclose()
