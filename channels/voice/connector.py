"""The phone line's four parts, on the `twilio` SDK (Programmable Voice).

verify: Twilio's signature (X-Twilio-Signature) with the SDK's RequestValidator, over the address Twilio was given
(the turn number and language ride in the signed query of each `<Gather>` action). parse: a turn's speech result or
key press into a normalized message (CallSid + turn is the dedupe key; 0 asks for a person; 1-9 pick the spoken
menu's choice), a message left after the tone as an audio attachment. render (what is said): TwiML built with the
SDK's VoiceResponse: `<Say>` in a Chinese or English voice, buttons as "press 1 for …", numbers read digit by digit,
then the next `<Gather input="speech dtmf">` with speech hints. send (what is texted): everything said to the caller
outside the call (an agent's later reply, a notice when their order moves, the order number, a long answer in full)
goes by SMS to the number that called, through the SMS connector's renderer and sender.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
from twilio.twiml.voice_response import VoiceResponse

from channels.sms.connector import SmsConnector, SmsSettings
from gateway.connectors import RenderContext, VendorRequest
from gateway.message import Attachment, Capabilities, DeliveryResult, InboundMessage, OutboundMessage
from gateway.rendering import sentences

Language = Literal["zh", "en"]
GATHER_LANGUAGE: dict[str, str] = {"zh": "zh-CN", "en": "en-US"}
REQUEST_PERSON = "/request_human"  # what the bot hears when the caller presses 0
# Twilio's stand-ins for a caller who hid their number: such a caller is one conversation per call, never a contact.
ANONYMOUS_CALLERS = frozenset({"anonymous", "restricted", "unknown", "blocked", "unavailable", "private",
                               "+266696687", "+86282452253", "+7378742833", "+2562533", "+8656696"})
E164 = re.compile(r"^\+[1-9]\d{5,14}$")
# Twilio's hints: at most 500 phrases of at most 100 characters.
MAX_HINTS = 500
MAX_HINT_CHARS = 100
# An order number, a phone number, any long run of digits: read one character at a time.
_SPELLED = re.compile(r"[A-Z]{1,4}(?:-\d+)+|\+?\d[\d-]{3,}\d")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")

TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "greeting": "您好，这里是滨江市民服务热线。请直接说出您的问题，或按0转人工服务。For English, press 9.",
        "again": "抱歉，我没有听清。请再说一遍，或按0转人工服务。",
        "goodbye": "感谢您的来电，再见。",
        "press": "{title}，请按{n}",
        "later": "答复正在准备中，稍后会以短信发送给您。",
        "texted": "完整内容已通过短信发送给您。",
        "connecting": "正在为您转接人工服务，请稍候。",
        "leave_message": "现在工作人员无法接听。请在提示音后留言，说完请按井号键，我们会尽快回复您。",
        "message_taken": "您的留言已收到，工作人员会尽快回复您。再见。",
        "no_answer": "工作人员暂时无法接听。请在提示音后留言，说完请按井号键。",
        "order_text": "您的工单号是 {number}。回复本短信可继续与我们联系。",
        "anything_else": "还有什么可以帮您？",
    },
    "en": {
        "greeting": "Welcome to the Binjiang City service line. Please tell me how I can help, or press 0 for a "
                    "person. 中文服务请按8。",
        "again": "Sorry, I did not catch that. Please say it again, or press 0 for a person.",
        "goodbye": "Thank you for calling. Goodbye.",
        "press": "for {title}, press {n}",
        "later": "Your answer is on its way; we will text it to you shortly.",
        "texted": "We have texted you the full answer.",
        "connecting": "Putting you through to a person, please hold.",
        "leave_message": "No one can take your call right now. Please leave a message after the tone and press "
                         "the pound key when you are done; we will get back to you.",
        "message_taken": "Thank you, we have your message and will get back to you. Goodbye.",
        "no_answer": "No one is free to take your call. Please leave a message after the tone and press the "
                     "pound key when you are done.",
        "order_text": "Your work order number is {number}. Reply to this text to reach us again.",
        "anything_else": "Is there anything else I can help you with?",
    },
}


def text(language: str, key: str, **values: str) -> str:
    return TEXTS["en" if language == "en" else "zh"][key].format(**values)


def has_chinese(value: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in value)


def spell_numbers(value: str) -> str:
    """Order and phone numbers read back one character at a time ("BJ-2026" → "B J, 2 0 2 6")."""

    def spelled(match: re.Match[str]) -> str:
        if _DATE.fullmatch(match.group(0)):
            return match.group(0)  # a date is said as a date
        groups = [" ".join(part) for part in match.group(0).lstrip("+").split("-") if part]
        return ", ".join(groups)

    return _SPELLED.sub(spelled, value)


def spoken_menu(titles: Sequence[str], language: str) -> str:
    joiner = "；" if language != "en" else ", "
    items = [text(language, "press", title=title, n=str(i)) for i, title in enumerate(titles, start=1)]
    said = joiner.join(items)
    return (said + "。") if language != "en" else (said[:1].upper() + said[1:] + ".")


def shorten(value: str, limit: int) -> tuple[str, bool]:
    """Up to `limit` characters, ending on a sentence end when one is within reach; True when something was cut."""
    if len(value) <= limit:
        return value, False
    kept = ""
    for piece in sentences(value):
        if len(kept) + len(piece) > limit:
            break
        kept += piece
    if not kept:  # one long sentence: cut at a word (or any character, in Chinese)
        kept = value[:limit].rsplit(" ", 1)[0] if " " in value[:limit] else value[:limit]
    return kept.strip(), True


@dataclass(frozen=True)
class VoiceSettings:
    public_base_url: str
    english_numbers: frozenset[str] = frozenset()
    transfer_to: str = ""
    voice_zh: str = "Polly.Zhiyu"
    voice_en: str = "Polly.Joanna"
    max_spoken_chars: int = 240
    message_max_seconds: int = 120


@dataclass(frozen=True)
class CallTurn:
    """Where a call stands, from the signed query of the address Twilio was told to call next."""

    turn: int
    language: Language
    silence: int = 0
    menu: bool = False  # the greeting's language choice (8 / 9) may be pressed now


@dataclass(frozen=True)
class Spoken:
    """What a call hears of a turn's replies, and whether some of it must also be texted in full."""

    says: list[str]
    texted: list[OutboundMessage]


class VoiceConnector:
    name = "voice"
    # Calls are answered in the webhook's response (TwiML); whatever is said to a caller later is texted.
    capabilities = Capabilities(buttons=False, images=False, max_text_length=1600, push=True, media=True)

    def __init__(self, settings: VoiceSettings, texts: SmsConnector,
                 phrases: Callable[[str], Sequence[str]] = lambda _language: ()) -> None:
        self.settings = settings
        self.texts = texts  # the SMS connector that texts callers (its own settings: sender number, receipts path)
        self.channel_account = texts.channel_account
        self.phrases = phrases

    # -- verify -------------------------------------------------------------------------------------------------------

    async def verify(self, request: VendorRequest) -> None:
        """Twilio's signature over the address it was given (with its query) and the form, by the SDK."""
        await self.texts.verify(request)

    form_of = staticmethod(SmsConnector.form_of)

    # -- parse --------------------------------------------------------------------------------------------------------

    def call_turn(self, query: Mapping[str, str], form: Mapping[str, str]) -> CallTurn:
        """The turn and language the signed query says; a new call's language from the number it called."""
        try:
            turn = max(0, min(int(query.get("turn", "0")), 10_000))
            silence = max(0, min(int(query.get("silence", "0")), 10))
        except ValueError:
            turn, silence = 0, 0
        language = query.get("lang")
        if language not in ("zh", "en"):
            language = "en" if form.get("To", "") in self.settings.english_numbers else "zh"
        return CallTurn(turn, language, silence, query.get("menu") == "1")  # type: ignore[arg-type]

    @staticmethod
    def caller(form: Mapping[str, str]) -> tuple[str, str | None]:
        """Who called: their number and whether it is a verified identity. A hidden number is the call itself; a
        number the carrier's STIR/SHAKEN check failed is kept as data, never as identity."""
        number = (form.get("From") or "").strip()
        if not E164.match(number) or number.lower() in ANONYMOUS_CALLERS:
            return f"call:{form.get('CallSid', '')}", None
        attestation = (form.get("StirVerstat") or "").lower()
        if "failed" in attestation or attestation.startswith("no-tn"):
            return number, None
        return number, number

    def parse(self, form: Mapping[str, str], call: CallTurn) -> InboundMessage | None:
        """The caller's words (or key) in this turn; None when they said nothing."""
        speech = " ".join(form.get("SpeechResult", "").split())
        digits = "".join(ch for ch in form.get("Digits", "") if ch in "0123456789*#")[:32]
        if not speech and not digits:
            return None
        user, verified = self.caller(form)
        metadata: dict[str, Any] = {"call_sid": form.get("CallSid"), "input": "speech" if speech else "dtmf"}
        if speech and form.get("Confidence"):
            metadata["speech_confidence"] = form.get("Confidence")
        return InboundMessage(
            channel=self.name,
            channel_account=form.get("To") or self.channel_account,
            external_user_id=user,
            external_message_id=f"{form.get('CallSid')}:{call.turn}",
            text=speech or digits,
            reply_payload=REQUEST_PERSON if not speech and digits == "0" else None,
            metadata=metadata,
            raw=dict(form),
            verified_phone=verified,
        )

    def recording(self, form: Mapping[str, str]) -> InboundMessage | None:
        """A message the caller left after the tone: the recording as an audio attachment (fetched and kept)."""
        url = form.get("RecordingUrl", "")
        if not url.startswith(("https://", "http://")) or not form.get("RecordingSid"):
            return None
        user, verified = self.caller(form)
        seconds = form.get("RecordingDuration") or "?"
        return InboundMessage(
            channel=self.name,
            channel_account=form.get("To") or self.channel_account,
            external_user_id=user,
            external_message_id=form["RecordingSid"],
            text=f"[voicemail {seconds}s]",
            attachments=(Attachment(kind="audio", url=f"{url}.mp3", mime="audio/mpeg", name="voicemail.mp3"),),
            # A message for a person (offered only while the conversation waits for one, so the bot stays quiet);
            # the recording is fetched and kept like any attachment.
            metadata={"call_sid": form.get("CallSid"), "voicemail": True},
            raw=dict(form),
            verified_phone=verified,
        )

    def transcription(self, form: Mapping[str, str]) -> InboundMessage | None:
        """Twilio's transcript of a left message, beside the recording."""
        words = (form.get("TranscriptionText") or "").strip()
        sid = form.get("TranscriptionSid") or (f"{form.get('RecordingSid')}:transcript"
                                               if form.get("RecordingSid") else None)
        if not words or not sid or (form.get("TranscriptionStatus") or "completed") != "completed":
            return None
        user, verified = self.caller(form)
        return InboundMessage(
            channel=self.name,
            channel_account=form.get("To") or self.channel_account,
            external_user_id=user,
            external_message_id=sid,
            text=words,
            metadata={"call_sid": form.get("CallSid"), "transcript_of": form.get("RecordingSid"),
                      "no_reply": "voicemail transcript"},
            raw=dict(form),
            verified_phone=verified,
        )

    # -- render: what the call hears ------------------------------------------------------------------------------

    def url(self, path: str, **query: str | int) -> str:
        """An address on this gateway as Twilio must call it (and will sign it)."""
        base = self.settings.public_base_url.rstrip("/") + path
        return f"{base}?{urlencode(query)}" if query else base

    def say(self, response: VoiceResponse | Any, words: str, language: str) -> None:
        if not words:
            return
        zh = has_chinese(words) or (language != "en" and not words.isascii())
        response.say(words, language="zh-CN" if zh else "en-US",
                     voice=self.settings.voice_zh if zh else self.settings.voice_en)

    def spoken(self, replies: Sequence[OutboundMessage], language: str, menus: bool = True) -> Spoken:
        """The replies as the call says them: text, then the buttons as a spoken menu; an answer too long to listen
        to is cut at a sentence end and texted in full."""
        says: list[str] = []
        texted: list[OutboundMessage] = []
        for reply in replies:
            words = reply.text or ""
            if not words and isinstance(reply.custom, dict) and isinstance(reply.custom.get("text"), str):
                words = reply.custom["text"]
            words, cut = shorten(words.strip(), self.settings.max_spoken_chars)
            if cut:
                texted.append(reply)
                words = f"{words} {text(language, 'texted')}"
            if reply.image and not cut:
                texted.append(OutboundMessage(image=reply.image))
            if menus and reply.buttons:
                words = f"{words} {spoken_menu([b.title for b in reply.buttons[:9]], language)}".strip()
            if words:
                says.append(spell_numbers(words))
        return Spoken(says, texted)

    def gather(self, response: VoiceResponse, call: CallTurn, says: Sequence[str], menu: bool = False
               ) -> VoiceResponse:
        """Say these (the caller may speak or press over them), then listen for the next turn; silence re-asks.
        `menu`: the greeting's language choice (8 / 9) may be pressed in the answer."""
        language = call.language
        query: dict[str, str | int] = {"turn": call.turn + 1, "lang": language}
        if menu:
            query["menu"] = "1"
        hints = self.hints(language)
        gather = response.gather(
            input="speech dtmf", action=self.url("/channels/voice/webhook", **query), method="POST",
            language=GATHER_LANGUAGE[language], speech_timeout="auto", timeout=6, num_digits=1,
            action_on_empty_result=False, **({"hints": hints} if hints else {}),
        )
        for words in says:
            self.say(gather, words, language)
        response.redirect(self.url("/channels/voice/webhook", **query, silence=call.silence + 1), method="POST")
        return response

    def hints(self, language: str) -> str:
        """Phrases the recogniser should expect (KB titles, the intents' examples), as Twilio takes them."""
        seen: dict[str, None] = {}
        for phrase in self.phrases(language):
            cleaned = " ".join(phrase.replace(",", " ").split())[:MAX_HINT_CHARS]
            if cleaned:
                seen.setdefault(cleaned, None)
            if len(seen) >= MAX_HINTS:
                break
        return ",".join(seen)

    def greeting(self, call: CallTurn) -> str:
        response = VoiceResponse()
        return str(self.gather(response, call, [text(call.language, "greeting")], menu=True))

    def silence(self, call: CallTurn) -> str:
        response = VoiceResponse()
        if call.silence >= 2:
            self.say(response, text(call.language, "goodbye"), call.language)
            response.hangup()
            return str(response)
        return str(self.gather(response, call, [text(call.language, "again")], menu=call.menu))

    def leave_message(self, response: VoiceResponse, call: CallTurn, prompt: str) -> str:
        """A message after the tone, with Twilio's transcript; both come back to us signed."""
        self.say(response, prompt, call.language)
        lang = {"lang": call.language}
        response.record(
            action=self.url("/channels/voice/recording", **lang), method="POST",
            max_length=self.settings.message_max_seconds, finish_on_key="#", play_beep=True, timeout=8,
            transcribe=True, transcribe_callback=self.url("/channels/voice/transcription", **lang),
        )
        self.say(response, text(call.language, "goodbye"), call.language)
        response.hangup()
        return str(response)

    def transfer(self, response: VoiceResponse, call: CallTurn, caller_id: str | None) -> str:
        """Put the caller through to the centre; if nobody answers, Twilio asks /dial what next."""
        self.say(response, text(call.language, "connecting"), call.language)
        dial = response.dial(action=self.url("/channels/voice/dial", lang=call.language), method="POST",
                             timeout=30, **({"caller_id": caller_id} if caller_id else {}))
        target = self.settings.transfer_to
        if target.startswith("sip:"):
            dial.sip(target)
        else:
            dial.number(target)
        return str(response)

    def message_taken(self, call: CallTurn) -> str:
        response = VoiceResponse()
        self.say(response, text(call.language, "message_taken"), call.language)
        response.hangup()
        return str(response)

    def hang_up(self) -> str:
        response = VoiceResponse()
        response.hangup()
        return str(response)

    # -- render and send: what the caller is texted ---------------------------------------------------------------

    def render(self, recipient: str, outbound: OutboundMessage, language: str,
               context: RenderContext | None = None) -> list[dict[str, Any]]:
        if not E164.match(recipient):  # a caller who hid their number cannot be texted
            return []
        return self.texts.render(recipient, outbound, language, context)

    async def send(self, payload: dict[str, Any]) -> DeliveryResult:
        if not payload.get("from"):
            return DeliveryResult("failed", error="no number to text callers from (VOICE_SMS_FROM_NUMBER)")
        return await self.texts.send(payload)

    async def fetch_media(self, attachment: dict[str, Any]) -> tuple[str | None, AsyncIterator[bytes]]:
        """Recordings sit behind Twilio's auth, like MMS media."""
        return await self.texts.fetch_media(attachment)

    async def close(self) -> None:
        await self.texts.close()


def texting_connector(account_sid: str, auth_token: str, from_number: str, public_base_url: str,
                      api_base_url: str, http: httpx.AsyncClient) -> SmsConnector:
    """The SMS sender of the phone line: its receipts come back to /channels/voice/sms-status."""
    return SmsConnector(
        SmsSettings(account_sid, auth_token, from_number, public_base_url, api_base_url,
                    status_path="/channels/voice/sms-status"),
        http,
    )
