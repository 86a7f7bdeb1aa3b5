"""Property-based tests (hypothesis) of every inbound parser: whatever a stranger sends, a parser gives a clean result
or its channel's clean, expected rejection, never another exception (which would be a 500, a dropped socket, or a
vendor retrying forever).

Each parser's contract:
- SMS (`SmsConnector.parse`, after Twilio's signature): any form gives an InboundMessage.
- Telegram (`TelegramConnector.parse`, after the secret header): an update gives a ParsedUpdate or UnparseableUpdate.
- WeChat (`WeChatConnector.open` then `parse`, with and without the AES key): an Envelope / Parsed, or Forged (403)
  or Unreadable (400).
- Web chat frames (`_parse_frame`, `_hello`): a WebchatFrame or a FrameError; a (token, pending frame) pair.
- REST (`RestRequest` then `RestConnector.parse`): a ValidationError (422), or an InboundMessage.
- Slack (`parse_payload`, after the signature): a payload dict or Malformed (400).
And over HTTP, on one in-process gateway with every webhook channel (its event loop in a thread of its own, so the
examples run one after the other without pytest-asyncio): arbitrary bodies, authenticated as each vendor would, get a
4xx (or the vendor's acknowledgement), never a 5xx.

Inputs are random, and built from the pieces real payloads are made of (fixture documents with one part replaced,
numbers that are not numbers, 4,300-digit integers, markup that is not XML …), so the interesting paths are reached.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from functools import reduce
from html import escape
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import pytest
import xmltodict
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from channels.rest.connector import RestConnector, RestRequest
from channels.sms.connector import SmsConnector, SmsSettings
from channels.telegram.connector import ParsedUpdate, TelegramConnector, TelegramSettings, UnparseableUpdate
from channels.webchat.connector import WebchatFrame
from channels.webchat.routes import FrameError, _hello, _parse_frame
from channels.wechat.connector import Envelope, Forged, Parsed, Unreadable, WeChatConnector, WeChatSettings
from gateway.coordination import InProcessCoordination
from gateway.message import InboundMessage
from handoff.slack.routes import Malformed, parse_payload
from tests.channels.support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    BOT_TOKEN,
    FROM_NUMBER,
    TG_SECRET,
    Gateway,
    StandInRasa,
    StandInTelegram,
    StandInTwilio,
    gateway_settings,
    load_form,
    running_gateway,
    signed_form,
)
from tests.channels.wechat.standin import AES_KEY, APP_ID, APP_SECRET, TOKEN, StandInWeChat
from tests.handoff.slack.standin import BOT_TOKEN as SLACK_BOT_TOKEN
from tests.handoff.slack.standin import CHANNEL as SLACK_CHANNEL
from tests.handoff.slack.standin import SIGNING_SECRET, StandInSlack

T = TypeVar("T")
FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
HTTP_FUZZ = settings(FUZZ, max_examples=100)
ROOT = Path(__file__).resolve().parent.parent
TELEGRAM_FIXTURES = sorted((ROOT / "channels" / "telegram" / "fixtures").glob("*.json"))
WECHAT_FIXTURES = sorted((ROOT / "channels" / "wechat" / "fixtures").glob("*.xml"))
SLACK_FIXTURES = sorted((ROOT / "handoff" / "slack" / "fixtures").glob("*.json"))
assert SLACK_FIXTURES and TELEGRAM_FIXTURES and WECHAT_FIXTURES, "the real payloads the mutations start from"

# ---- pieces ------------------------------------------------------------------------------------------------------

NUMBERISH = ["0", "1", "-1", "3", "10", "11", "999999999999", "1e3", "1e400", "NaN", "inf", "-inf", "0x10", " 2 ",
             "１２", "٣", "1_0", "", "null", "true", "9" * 4301, "-0", "3.5", "1763900000", "99999999999999999999"]
TEXTISH = ["", " ", "你好", "STOP", "START", "/start", "/start abc", "#3", "#", "/greet{\"a\":1}", "\x00", "\ud7ff",
           "<script>", "]]>", "<![CDATA[x]]>", "&amp;", "&lt;", "a" * 5000, "http://x", "https://evil.example/a.jpg",
           "image/jpeg", "audio/amr", "application/octet-stream", "/", "\u202e"]
text_piece = st.one_of(st.sampled_from(NUMBERISH), st.sampled_from(TEXTISH), st.text(max_size=40))
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                        st.sampled_from(NUMBERISH), st.sampled_from(TEXTISH))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=10), st.sampled_from(
        ["type", "text", "id", "user", "event", "message", "chat", "date", "from", "data", "session", "client_id"])),
        inner, max_size=5)), max_leaves=20)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


@st.composite
def mutations_of(draw: st.DrawFn, documents: list[Any]) -> Any:
    """A real document with one to three parts replaced by arbitrary JSON, or removed."""
    data = copy.deepcopy(draw(st.sampled_from(documents)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = reduce(lambda node, key: node[key], path[:-1], data)
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_value)
    return data


def json_document(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# ---- SMS -------------------------------------------------------------------------------------------------------------

SMS_KEYS = ["MessageSid", "SmsMessageSid", "SmsSid", "From", "To", "Body", "NumMedia", "NumSegments", "OptOutType",
            "AccountSid", "ApiVersion", "MessagingServiceSid", "ProfileName", "WaId", "FromCity", "FromCountry",
            *[f"MediaUrl{i}" for i in (0, 1, 2, 9, 10, 11)], *[f"MediaContentType{i}" for i in (0, 1, 2, 9, 10, 11)]]
sms_form = st.dictionaries(st.one_of(st.sampled_from(SMS_KEYS), st.text(max_size=12)), text_piece, max_size=14)
SMS = SmsConnector(SmsSettings(ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, "https://gw.binjiang.example"),
                   httpx.AsyncClient())


@FUZZ
@given(sms_form)
@example({"NumMedia": "9" * 4301, "MediaUrl0": "x"})
@example({"NumMedia": "１２", **{f"MediaUrl{i}": f"https://m/{i}" for i in range(12)}})
@example({"NumMedia": "-3", "MediaUrl0": "https://m/0", "OptOutType": "STOP"})
def test_sms_parse_takes_any_form(form: dict[str, str]) -> None:
    message = SMS.parse(form)
    assert isinstance(message, InboundMessage) and message.raw == form
    assert len(message.attachments) <= 10 and all(a.url for a in message.attachments)
    assert {a.kind for a in message.attachments} <= {"image", "audio", "video", "file"}
    assert message.metadata.get("vendor_opt_out") in (None, "stop", "start")
    assert message.verified_phone == (form.get("From") or None)


# ---- Telegram -------------------------------------------------------------------------------------------------------

TELEGRAM = TelegramConnector(TelegramSettings(BOT_TOKEN, TG_SECRET))
telegram_update = st.one_of(mutations_of([json_document(p) for p in TELEGRAM_FIXTURES]),
                            st.dictionaries(st.sampled_from(["update_id", "message", "callback_query",
                                                             "my_chat_member", "edited_message"]), json_value),
                            st.dictionaries(st.text(max_size=10), json_value, max_size=4))


def _telegram(data: dict[str, Any]) -> ParsedUpdate | None:
    try:
        return TELEGRAM.parse(data)
    except UnparseableUpdate:
        return None
    except ValueError:
        # The webhook treats any ValueError as unparseable (acknowledged, dropped). Raised here, e.g., by int() on a
        # callback payload "#" + 4,301 digits or "#²" (isdigit but not a number); only we choose callback data.
        return None


@FUZZ
@given(telegram_update)
@example({"update_id": 1, "message": {"message_id": 1, "date": 10**20, "chat": {"id": 1, "type": "private"}}})
@example({"update_id": 1, "callback_query": {"id": "q", "chat_instance": "c", "data": "#" + "9" * 4301,
                                             "from": {"id": 1, "is_bot": False, "first_name": "a"}}})
def test_telegram_parse_takes_any_update(data: dict[str, Any]) -> None:
    parsed = _telegram(data)
    if parsed is not None and parsed.message is not None:
        # update_id as aiogram's model read it (pydantic's lax mode takes "5", 5.0 and False as numbers)
        assert str(parsed.message.external_message_id).lstrip("-").isdigit()
        assert isinstance(parsed.message.external_user_id, str) and isinstance(parsed.message.text, str)


# ---- WeChat ---------------------------------------------------------------------------------------------------------

WECHAT_FIELDS = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "MsgID", "PicUrl",
                 "MediaId", "Format", "Recognition", "ThumbMediaId", "Location_X", "Location_Y", "Scale", "Label",
                 "Title", "Description", "Url", "Event", "EventKey", "Ticket", "Latitude", "Longitude", "Precision",
                 "Status", "Encrypt"]
WECHAT_VALUES = ["text", "image", "voice", "video", "shortvideo", "location", "link", "event", "miniprogrampage",
                 "TEXT", "subscribe", "unsubscribe", "SCAN", "LOCATION", "CLICK", "VIEW", "TEMPLATESENDJOBFINISH",
                 "scancode_push", "pic_sysphoto", "MASSSENDJOBFINISH", "failed:user block", "success", "amr",
                 "oBj7x5Kq3mZc_citizen_0001", "gh_0b1c2d3e4f5a", "CHECK_WORK_ORDER"]
wechat_value = st.one_of(st.sampled_from(WECHAT_VALUES), text_piece)


@st.composite
def wechat_xml(draw: st.DrawFn) -> str:
    """A push's XML: WeChat's elements with arbitrary values, in CDATA, escaped, raw (maybe broken) or nested."""
    parts = []
    for name in draw(st.lists(st.one_of(st.sampled_from(WECHAT_FIELDS), st.from_regex(r"[A-Za-z_]{1,8}",
                                                                                      fullmatch=True)), max_size=9)):
        value = draw(wechat_value)
        style = draw(st.sampled_from(["cdata", "escaped", "raw", "nested", "repeated"]))
        if style == "cdata":
            parts.append(f"<{name}><![CDATA[{value}]]></{name}>")
        elif style == "escaped":
            parts.append(f"<{name}>{escape(value)}</{name}>")
        elif style == "raw":
            parts.append(f"<{name}>{value}</{name}>")
        elif style == "nested":
            parts.append(f"<{name}><item><{name}>{escape(value)}</{name}></item></{name}>")
        else:
            parts.append(f"<{name}>{escape(value)}</{name}>" * 2)
    return "<xml>" + "".join(parts) + "</xml>"


@st.composite
def wechat_fixture_mutation(draw: st.DrawFn) -> str:
    """A real push (fixtures/) with one element's text replaced, or one element removed."""
    path = draw(st.sampled_from(WECHAT_FIXTURES))
    xml = path.read_text(encoding="utf-8").format(openid="oBj7x5Kq3mZc_citizen_0001", create_time=1763900000,
                                                  msg_id=24000000000000001, content="你好", key="CHECK_WORK_ORDER",
                                                  status="success")
    document = xmltodict.parse(xml)["xml"]
    key = draw(st.sampled_from(sorted(document)))
    if draw(st.booleans()):
        del document[key]
    else:
        document[key] = draw(wechat_value)
    return str(xmltodict.unparse({"xml": document}, full_document=False))


wechat_text = st.one_of(wechat_xml(), wechat_fixture_mutation(), st.text(max_size=200),
                        st.sampled_from(["", "<xml/>", "<xml></xml>", "<html>nope", "<?xml version='1.0'?><xml>",
                                         "<!DOCTYPE x [<!ENTITY a 'aaaa'>]><xml><Content>&a;</Content></xml>",
                                         "<xml>" + "<a>" * 5000 + "</a>" * 5000 + "</xml>"]))
wechat_body = st.one_of(wechat_text.map(lambda t: t.encode("utf-8")), st.binary(max_size=300),
                        wechat_text.map(lambda t: t.encode("utf-16")),
                        wechat_text.map(lambda t: f"<?xml version='1.0' encoding='latin-1'?>{t}".encode("latin-1",
                                                                                                         "replace")))


def wechat(aes_key: str) -> WeChatConnector:
    return WeChatConnector(WeChatSettings(APP_ID, APP_SECRET, TOKEN, aes_key), InProcessCoordination(),
                           httpx.AsyncClient())


WECHAT_PLAIN, WECHAT_AES = wechat(""), wechat(AES_KEY)


def wechat_query(**extra: str) -> dict[str, str]:
    stamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    signer = WeChatSigner()
    signer.add_data(TOKEN, stamp, nonce)
    return {"signature": signer.signature, "timestamp": stamp, "nonce": nonce, **extra}


def sealed(plaintext: str, key: str = AES_KEY, app_id: str = APP_ID) -> tuple[dict[str, str], bytes]:
    """A safe-mode push of any plaintext, encrypted and signed with wechatpy's own code."""
    query = wechat_query()
    document = xmltodict.parse(WeChatCrypto(TOKEN, key, app_id).encrypt_message(
        plaintext, query["nonce"], query["timestamp"]))["xml"]
    query.update(encrypt_type="aes", msg_signature=document["MsgSignature"])
    return query, f"<xml><Encrypt><![CDATA[{document['Encrypt']}]]></Encrypt></xml>".encode()


def signed_ciphertext(ciphertext: str) -> tuple[dict[str, str], bytes]:
    """Any Encrypt element with a correct msg_signature: what only a holder of the token could send."""
    query = wechat_query(encrypt_type="aes")
    signer = WeChatSigner()
    signer.add_data(TOKEN, query["timestamp"], query["nonce"], ciphertext)
    query["msg_signature"] = signer.signature
    return query, f"<xml><Encrypt>{escape(ciphertext)}</Encrypt></xml>".encode()


def _wechat_read(connector: WeChatConnector, query: dict[str, str], body: bytes) -> Parsed | None:
    try:
        envelope = connector.open(query, body)
    except (Forged, Unreadable):
        return None
    assert isinstance(envelope, Envelope) and isinstance(envelope.xml, str)
    try:
        parsed = connector.parse(envelope.xml)
    except Unreadable:
        return None
    assert isinstance(parsed, Parsed)
    if parsed.message is not None:
        json.dumps(parsed.message.raw)  # what the pipeline stores must serialise
    return parsed


@FUZZ
@given(wechat_text)
def test_wechat_parse_takes_any_xml(xml: str) -> None:
    try:
        parsed = WECHAT_PLAIN.parse(xml)
    except Unreadable:
        return
    assert isinstance(parsed, Parsed)
    if parsed.message is not None:
        assert parsed.message.external_user_id and isinstance(parsed.message.text, str)
        json.dumps(parsed.message.raw)


@FUZZ
@given(wechat_body)
def test_wechat_open_takes_any_plaintext_body(body: bytes) -> None:
    _wechat_read(WECHAT_PLAIN, wechat_query(openid="o"), body)
    # With the AES key, a push that is not encrypt_type=aes is refused before its body is read.
    with pytest.raises(Forged):
        WECHAT_AES.open(wechat_query(openid="o"), body)


# What to encrypt and how: sealing happens in the test (WeChatCrypto pads with the `random` module, which hypothesis
# does not want inside strategies).
encrypted_push = st.one_of(
    st.tuples(st.just("sealed"), wechat_text, st.sampled_from([(AES_KEY, APP_ID), (AES_KEY, "wx0000000000000000"),
                                                                ("Z" * 43, APP_ID)])),
    st.tuples(st.just("ciphertext"), st.one_of(st.text(max_size=120), st.binary(max_size=80).map(
        lambda b: base64.b64encode(b).decode())), st.none()),
)


def build_encrypted(spec: tuple[str, str, tuple[str, str] | None]) -> tuple[dict[str, str], bytes]:
    kind, text, sealing = spec
    if kind == "sealed" and sealing is not None:
        return sealed(text, *sealing)
    return signed_ciphertext(text)


@FUZZ
@given(encrypted_push)
def test_wechat_open_takes_any_encrypted_body(spec: tuple[str, str, tuple[str, str] | None]) -> None:
    query, body = build_encrypted(spec)
    _wechat_read(WECHAT_AES, query, body)
    _wechat_read(WECHAT_PLAIN, query, body)  # without the key: compatible mode's plaintext, or Unreadable


@FUZZ
@given(st.dictionaries(st.sampled_from(["signature", "timestamp", "nonce", "encrypt_type", "msg_signature",
                                        "openid", "echostr"]), text_piece), st.binary(max_size=100))
def test_wechat_open_takes_any_query(query: dict[str, str], body: bytes) -> None:
    for connector in (WECHAT_PLAIN, WECHAT_AES):
        with pytest.raises((Forged, Unreadable)):  # nothing here carries our token's signature
            connector.open(query, body)
        with pytest.raises(Forged):
            connector.handshake(query)


# ---- web chat frames ------------------------------------------------------------------------------------------------

frame_dict = st.fixed_dictionaries({"type": st.one_of(st.just("message"), json_value)}, optional={
    "text": st.one_of(st.text(max_size=50), st.sampled_from(TEXTISH), json_value),
    "payload": st.one_of(st.text(max_size=20), json_value, st.just("x" * 1001)),
    "client_id": st.one_of(st.text(max_size=70), json_value), "session": json_value,
})
frame_raw = st.one_of(st.text(max_size=200), json_value.map(json.dumps), frame_dict.map(json.dumps),
                      st.sampled_from(['{"type": "hello"}', '{"type": "hello", "session": {"a": [1]}}', "null",
                                       '{"type": "message", "text": "\\ud800"}', "NaN", '"message"', "[]"]))
FRAME_CODES = {"empty", "too_long", "unsupported", "invalid"}


@FUZZ
@given(frame_raw)
def test_webchat_frames_are_a_frame_or_a_frame_error(raw: str) -> None:
    frame = _parse_frame(raw)
    assert isinstance(frame, WebchatFrame | FrameError)
    if isinstance(frame, FrameError):
        assert frame.code in FRAME_CODES and (frame.client_id is None or len(frame.client_id) <= 64)
    token, pending = _hello(raw)
    assert pending is None or pending == raw


# Found by these tests: `json.loads` raises RecursionError on deep nesting and ValueError on a number of more than
# 4,300 digits; one such frame used to drop the visitor's socket with a server error.
@pytest.mark.parametrize("raw", ["[" * 100_000, "1" * 5000,
                                 '{"type": "message", "text": "x", "n": ' + "7" * 5000 + "}"],
                         ids=["deep-nesting", "huge-number", "huge-number-in-frame"])
def test_webchat_frames_survive_json_the_decoder_refuses(raw: str) -> None:
    assert isinstance(_parse_frame(raw), FrameError)
    assert _hello(raw) == (None, raw)


# ---- REST ------------------------------------------------------------------------------------------------------------

rest_body = st.one_of(json_value, st.fixed_dictionaries({
    "sender": st.text(min_size=1, max_size=40), "message": st.one_of(st.sampled_from(TEXTISH), st.text(max_size=60))},
    optional={"metadata": st.one_of(st.dictionaries(st.sampled_from(["message_id", "verified_phone", "language"]),
                                                    json_value), json_value)}), st.fixed_dictionaries({}, optional={
    "sender": st.one_of(st.text(max_size=300), json_value), "message": st.one_of(st.text(max_size=50), json_value),
    "metadata": st.one_of(st.dictionaries(st.sampled_from(["message_id", "verified_phone", "contact_id", "language"]),
                                          json_value), json_value)}))


@FUZZ
@given(rest_body, st.one_of(st.none(), st.text(max_size=40)), st.booleans())
def test_rest_requests_validate_or_are_refused(body: Any, idempotency_key: str | None, trusted: bool) -> None:
    try:
        request = RestRequest.model_validate(body)
    except ValidationError:
        return
    message = RestConnector("token", trusted=trusted).parse(request, idempotency_key)
    assert isinstance(message, InboundMessage) and message.external_user_id == request.sender
    if not idempotency_key:  # the body's message_id is the key, not client data (with a header key it stays data)
        assert "message_id" not in message.metadata.get("client", {})
    if not trusted:
        assert message.verified_phone is None


# ---- Slack -----------------------------------------------------------------------------------------------------------

slack_body = st.one_of(
    mutations_of([json_document(p) for p in SLACK_FIXTURES]).map(lambda d: (json.dumps(d), "application/json")),
    json_value.map(lambda v: (json.dumps(v), "application/json")),
    mutations_of([json_document(p) for p in SLACK_FIXTURES if "actions" in p.read_text()]).map(
        lambda d: (urlencode({"payload": json.dumps(d)}), "application/x-www-form-urlencoded")),
    st.dictionaries(st.sampled_from(["payload", "command", "ssl_check", "token", "text"]), text_piece).map(
        lambda d: (urlencode(d), "application/x-www-form-urlencoded")),
    st.tuples(st.text(max_size=100), st.sampled_from(["application/json", "application/x-www-form-urlencoded", ""])),
)


@FUZZ
@given(slack_body)
@example(("[" * 100_000, "application/json"))
@example(("1" * 5000, "application/json"))
def test_slack_payloads_parse_or_are_malformed(body: tuple[str, str]) -> None:
    text, content_type = body
    try:
        payload = parse_payload(text.encode("utf-8", "surrogatepass"), content_type)
    except Malformed:
        return
    assert isinstance(payload, dict)


# ---- over HTTP: one in-process gateway with every webhook channel --------------------------------------------------


class Background:
    """An event loop in a thread of its own: the gateway and the vendors' stand-ins live there for the module."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-gateway", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Background, Gateway]]:
    background = Background()
    rasa, twilio, telegram = StandInRasa(), StandInTwilio(), StandInTelegram()
    wechat_api, slack = StandInWeChat(), StandInSlack()
    for server in (rasa, twilio, telegram, wechat_api, slack):
        background.run(server.start())  # type: ignore[attr-defined]
    settings = gateway_settings(
        tmp_path_factory.mktemp("fuzz-gateway"), rasa, twilio, telegram, service_hours="24x7",
        wechat_app_id=APP_ID, wechat_app_secret=APP_SECRET, wechat_token=TOKEN, wechat_encoding_aes_key=AES_KEY,
        wechat_api_base_url=wechat_api.url, wechat_passive_reply_seconds=0.0,
        slack_bot_token=SLACK_BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_handoff_channel=SLACK_CHANNEL,
        slack_api_base_url=slack.url,
    )
    context = running_gateway(settings)
    gateway = background.run(context.__aenter__())
    try:
        yield background, gateway
    finally:
        background.run(context.__aexit__(None, None, None))
        for server in (rasa, twilio, telegram, wechat_api, slack):
            background.run(server.stop())  # type: ignore[attr-defined]
        background.close()


def _post(live: tuple[Background, Gateway], path: str, content: bytes, headers: dict[str, str],
          params: dict[str, str] | None = None) -> httpx.Response:
    background, gateway = live
    response = background.run(gateway.client.post(path, content=content, headers=headers, params=params))
    event(f"{path} {response.status_code}")  # --hypothesis-show-statistics: how often each outcome was reached
    return response


SMS_FIXTURES = [load_form(ROOT / "channels" / "sms" / "fixtures" / name)
                for name in ("inbound_sms.form", "inbound_mms.form")]


@HTTP_FUZZ
@given(st.one_of(sms_form, st.tuples(st.sampled_from(SMS_FIXTURES), sms_form)))
def test_http_sms_signed_forms_never_get_a_5xx(live: tuple[Background, Gateway],
                                               fuzzed: dict[str, str] | tuple[dict[str, str], dict[str, str]]) -> None:
    # Half the time a real form with some fields replaced (a fresh MessageSid unless replaced), so that the
    # pipeline gets to store and answer it; else any form.
    form = fuzzed if isinstance(fuzzed, dict) else {**fuzzed[0], "MessageSid": f"SM{uuid.uuid4().hex}", **fuzzed[1]}
    body, headers = signed_form("/channels/sms/webhook", form)
    response = _post(live, "/channels/sms/webhook", body, headers)
    # 403 too: a form whose keys python-multipart reads back otherwise than they were signed (blank keys …)
    assert response.status_code in (200, 403, 422), (form, response.status_code, response.text)
    unsigned = _post(live, "/channels/sms/webhook", body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert unsigned.status_code == 403


@HTTP_FUZZ
@given(st.one_of(telegram_update.map(json.dumps).map(str.encode), st.binary(max_size=200)))
def test_http_telegram_bodies_are_acknowledged_never_a_5xx(live: tuple[Background, Gateway], body: bytes) -> None:
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    response = _post(live, "/channels/telegram/webhook", body, headers)
    assert response.status_code == 200, (body[:200], response.status_code)  # an error would be redelivered forever
    assert _post(live, "/channels/telegram/webhook", body, {"Content-Type": "application/json"}).status_code == 403


# Found by these tests: a deeply nested body (within the 512 KB limit) under our secret used to get a 500, which
# Telegram redelivers for ever.
def test_http_telegram_deep_nesting_is_acknowledged(live: tuple[Background, Gateway]) -> None:
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    background, gateway = live
    response = background.run(gateway.client.post("/channels/telegram/webhook", content=b"[" * 100_000,
                                                  headers=headers))
    assert response.status_code == 200


# Real pushes with a part replaced, sealed for us: these get past the signatures and the key to the parser and the
# pipeline.
genuine_sealed = st.tuples(st.just("sealed"), wechat_fixture_mutation(), st.just((AES_KEY, APP_ID)))


@HTTP_FUZZ
@given(st.sampled_from([genuine_sealed, encrypted_push, wechat_body]).flatmap(lambda chosen: chosen))  # a third each
def test_http_wechat_pushes_never_get_a_5xx(live: tuple[Background, Gateway],
                                            push: bytes | tuple[str, str, tuple[str, str] | None]) -> None:
    query, body = (wechat_query(openid="o"), push) if isinstance(push, bytes) else build_encrypted(push)
    response = _post(live, "/channels/wechat/webhook", body, {"Content-Type": "text/xml"}, params=query)
    assert response.status_code in (200, 400, 403), (query, body[:200], response.status_code, response.text)
    if "encrypt_type" not in query:
        assert response.status_code == 403  # the AES key is set: plaintext pushes are refused


def _slack_headers(body: bytes, content_type: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


@HTTP_FUZZ
@given(slack_body)
@example(("[" * 100_000, "application/json"))
def test_http_slack_signed_bodies_never_get_a_5xx(live: tuple[Background, Gateway], body: tuple[str, str]) -> None:
    text, content_type = body
    raw = text.encode("utf-8", "surrogatepass")
    response = _post(live, "/handoff/slack/events", raw, _slack_headers(raw, content_type))
    assert response.status_code in (200, 400, 401), (text[:300], response.status_code, response.text)
    if response.status_code == 401:  # only bodies slack_sdk cannot check: not UTF-8 (a lone surrogate)
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
    unsigned = _post(live, "/handoff/slack/events", raw, {"Content-Type": content_type})
    assert unsigned.status_code == 401


@HTTP_FUZZ
@given(st.one_of(rest_body.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200)))
@example(b"[" * 60_000)  # under the REST body limit (64 KB): reaches the JSON decoder
@example(b"1" * 5000)
def test_http_rest_bodies_never_get_a_5xx(live: tuple[Background, Gateway], body: bytes) -> None:
    response = _post(live, "/channels/rest/webhook", body, {"Content-Type": "application/json"})
    assert response.status_code < 500, (body[:300], response.status_code, response.text)
