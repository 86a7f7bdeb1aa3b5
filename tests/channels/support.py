"""Stand-ins of the vendors' HTTP APIs (Twilio REST, Telegram Bot API) and of the Rasa server, for channel tests.

Each runs as a real HTTP server on a free local port (aiohttp, in the test's event loop), records what it was sent
and fails on demand (a queue of statuses: 500, or 429 with Retry-After). The real SDKs on our side talk to them.
Also: an in-process gateway (create_app with the channels' settings, lifespan run, httpx ASGITransport).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import patch
from urllib.parse import urlencode

import httpx
from aiohttp import web
from fastapi import FastAPI
from twilio.request_validator import RequestValidator

from app.factory import create_app
from app.launch import free_port
from app.settings import Settings
from gateway.storage import Database
from kb_retrieval.service import KnowledgeService

ACCOUNT_SID = "AC" + "0" * 30 + "11"
AUTH_TOKEN = "test-twilio-auth-token-0123456789"
FROM_NUMBER = "+15005550006"
BOT_TOKEN = "123456789:AAH-test-token-for-the-stand-in"
TG_SECRET = "tg-webhook-secret-42"
PUBLIC_BASE = "https://gw.binjiang.example"
FIXTURES = Path(__file__).resolve().parent
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + b"\x00" * 400
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + b"\x00" * 200 + b"\xff\xd9"
BUTTONS = [{"title": "办理居住证", "payload": "/ask_residence_permit"},
           {"title": "路灯报修", "payload": "/report_streetlight"}]


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@dataclass
class Failures:
    """Statuses to answer before succeeding, in order: 500, or (429, retry_after_seconds)."""

    plan: list[int | tuple[int, float]] = field(default_factory=list)

    def next(self) -> int | tuple[int, float] | None:
        return self.plan.pop(0) if self.plan else None


# ---- Rasa ---------------------------------------------------------------------------------------------------------


@dataclass
class StandInRasa:
    """Answers the gateway channel's JSON: `buttons` gets two buttons; anything else an echo."""

    url: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0
    _runner: web.AppRunner | None = None

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.calls.append(body)
        text = body.get("message", "")
        if text == "/request_human":
            said = [{"recipient_id": body["sender"], "text": "好的，正在为您转接人工服务。"}]
            return web.json_response({"messages": said, "intent": {"name": "request_human", "confidence": 1.0},
                                      "slots_set": {"handoff_requested": True}, "latest_action": None})
        if text.startswith("report:"):
            number = text.removeprefix("report:")
            said = [{"recipient_id": body["sender"], "text": f"已为您登记工单 {number}。"}]
            return web.json_response({"messages": said, "intent": {"name": "report_problem", "confidence": 0.95},
                                      "slots_set": {"work_order_id": number}, "latest_action": None})
        if text in ("buttons", "选项"):
            messages = [{"recipient_id": body["sender"], "text": "请选择您要办理的事项", "buttons": BUTTONS}]
        elif text == "long":
            sentence = "您好，请携带身份证和居住证明到街道办事处办理。"
            messages = [{"recipient_id": body["sender"], "text": sentence * 60}]
        else:
            messages = [{"recipient_id": body["sender"], "text": f"echo:{text}"}]
        return web.json_response({"messages": messages, "intent": {"name": "echo", "confidence": 0.9},
                                  "slots_set": {}, "latest_action": None})

    async def _status(self, _request: web.Request) -> web.Response:
        return web.json_response({"model_file": "x"})

    async def start(self) -> StandInRasa:
        app = web.Application()
        app.router.add_post("/webhooks/gateway/webhook", self._webhook)
        app.router.add_get("/status", self._status)
        self._runner, self.url = await _serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def texts(self) -> list[str]:
        return [c["message"] for c in self.calls]


# ---- Twilio --------------------------------------------------------------------------------------------------------


@dataclass
class StandInTwilio:
    """Twilio's REST API (Messages.json) and an MMS media host. `sent` holds every accepted message's form."""

    url: str = ""
    sent: list[dict[str, str]] = field(default_factory=list)
    attempts: int = 0
    failures: Failures = field(default_factory=Failures)
    attempt_times: list[float] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def _create(self, request: web.Request) -> web.Response:
        self.attempts += 1
        self.attempt_times.append(time.monotonic())
        assert request.match_info["sid"] == ACCOUNT_SID
        assert request.headers.get("Authorization", "").startswith("Basic ")
        form = {k: str(v) for k, v in (await request.post()).items()}
        failure = self.failures.next()
        if failure == 500:
            return web.json_response({"code": 20500, "message": "Internal Server Error", "status": 500},
                                     status=500)
        if isinstance(failure, tuple):
            return web.json_response({"code": 20429, "message": "Too Many Requests", "status": 429}, status=429,
                                     headers={"Retry-After": str(failure[1])})
        if form.get("To") == "+15005550009":  # a number that replied STOP to Twilio
            return web.json_response({"code": 21610, "message": "Attempt to send to unsubscribed recipient",
                                      "status": 400}, status=400)
        sid = f"SM{next(self._ids):032x}"
        self.sent.append({**form, "sid": sid})
        return web.json_response({"sid": sid, "account_sid": ACCOUNT_SID, "to": form.get("To"),
                                  "from": form.get("From"), "body": form.get("Body"), "status": "queued",
                                  "num_segments": "1", "direction": "outbound-api"}, status=201)

    async def _media(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "") == "":
            return web.Response(status=401)
        if request.match_info["name"].endswith(".html"):
            return web.Response(text="<html>not an image</html>", content_type="text/html")
        return web.Response(body=JPEG, content_type="image/jpeg")

    async def _recording(self, request: web.Request) -> web.Response:
        """A call recording (Twilio serves it as .mp3 or .wav behind the account's credentials)."""
        authorized = request.headers.get("Authorization", "").startswith("Basic ")
        if request.match_info["sid"] != ACCOUNT_SID or not authorized:
            return web.Response(status=401)
        return web.Response(body=MP3, content_type="audio/mpeg")

    async def start(self) -> StandInTwilio:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)
        app.router.add_get("/2010-04-01/Accounts/{sid}/Recordings/{name}", self._recording)
        app.router.add_get("/media/{name}", self._media)
        self._runner, self.url = await _serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def bodies(self, to: str | None = None) -> list[str]:
        return [m["Body"] for m in self.sent if to is None or m["To"] == to]


def signed_form(path: str, params: dict[str, str], token: str = AUTH_TOKEN) -> tuple[bytes, dict[str, str]]:
    """A Twilio-shaped form post and its X-Twilio-Signature, computed by the SDK's own code."""
    signature = RequestValidator(token).compute_signature(PUBLIC_BASE + path, params)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    return urlencode(params).encode(), headers


def sms_form(body: str, sid: str | None = None, sender: str = "+8613800138000", **extra: str) -> dict[str, str]:
    base = load_form(FIXTURES / "sms" / "fixtures" / "inbound_sms.form")
    base.update(Body=body, From=sender, MessageSid=sid or f"SM{uuid.uuid4().hex}", SmsMessageSid=sid or "",
                SmsSid=sid or "", **extra)
    base["SmsMessageSid"] = base["SmsSid"] = base["MessageSid"]
    return base


def load_form(path: Path) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(path.read_text(encoding="utf-8").strip(), keep_blank_values=True))


# ---- Telegram ------------------------------------------------------------------------------------------------------


@dataclass
class StandInTelegram:
    """Telegram's Bot API at /bot<token>/<method> and files at /file/bot<token>/<path>."""

    url: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failures: Failures = field(default_factory=Failures)
    _runner: web.AppRunner | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    def sent(self, method: str | None = None) -> list[dict[str, Any]]:
        return [p for m, p in self.calls if method is None or m == method]

    async def _method(self, request: web.Request) -> web.Response:
        assert request.match_info["token"] == BOT_TOKEN
        method = request.match_info["method"]
        data = dict(await request.post()) if request.content_type != "application/json" else await request.json()
        params = {k: (v if isinstance(v, str | int | float) else str(v)) for k, v in data.items()}
        if method in ("sendMessage", "sendPhoto"):
            failure = self.failures.next()
            if failure == 500:
                return web.json_response({"ok": False, "error_code": 500, "description": "Internal Server Error"},
                                         status=500)
            if isinstance(failure, tuple):
                return web.json_response(
                    {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {failure[1]}",
                     "parameters": {"retry_after": int(failure[1])}},
                    status=429, headers={"Retry-After": str(int(failure[1]))},
                )
            if str(params.get("chat_id")) == "666":  # a citizen who blocked the bot
                return web.json_response({"ok": False, "error_code": 403,
                                          "description": "Forbidden: bot was blocked by the user"}, status=403)
        self.calls.append((method, params))
        now = int(time.time())
        if method in ("sendMessage", "sendPhoto"):
            chat = {"id": int(params["chat_id"]), "type": "private"}
            result: Any = {"message_id": next(self._ids), "date": now, "chat": chat}
            if method == "sendMessage":
                result["text"] = params["text"]
            else:
                result["photo"] = [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}]
        elif method == "getFile":
            result = {"file_id": params["file_id"], "file_unique_id": "u1", "file_size": len(JPEG),
                      "file_path": f"photos/{params['file_id']}.jpg"}
        else:  # answerCallbackQuery, setWebhook, …
            result = True
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        assert request.match_info["token"] == BOT_TOKEN
        return web.Response(body=JPEG, content_type="image/jpeg")

    async def start(self) -> StandInTelegram:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.*}", self._file)
        self._runner, self.url = await _serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def telegram_update(name: str, update_id: int | None = None, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "telegram" / "fixtures" / f"{name}.json").read_text("utf-8"))
    if update_id is not None:
        data["update_id"] = update_id
    for key, value in changes.items():  # e.g. text="hi" on message updates
        data["message"][key] = value
    return data


# ---- the gateway, in process ----------------------------------------------------------------------------------------


@dataclass
class Gateway:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings

    @property
    def services(self) -> Any:
        return self.app.state.services

    @property
    def db(self) -> Database:
        return self.app.state.services.db  # type: ignore[no-any-return]

    async def post_sms(self, params: dict[str, str], path: str = "/channels/sms/webhook",
                       headers: dict[str, str] | None = None) -> httpx.Response:
        body, signed = signed_form(path, params)
        return await self.client.post(path, content=body, headers={**signed, **(headers or {})})

    async def post_telegram(self, update: dict[str, Any], secret: str | None = TG_SECRET) -> httpx.Response:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        return await self.client.post("/channels/telegram/webhook", json=update, headers=headers)

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every spawned turn finished and the outbox has nothing due."""
        services = self.services
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = [t for t in services._tasks if t.get_name() in ("sms-turn", "telegram-turn")]
            if busy:
                await asyncio.wait(busy, timeout=max(0.01, deadline - time.monotonic()))
                continue
            await services.outbox.drain(max(0.01, deadline - time.monotonic()))
            if not [t for t in services._tasks if t.get_name() in ("sms-turn", "telegram-turn")]:
                return
        raise TimeoutError("gateway did not settle")


def gateway_settings(data_dir: Path, rasa: StandInRasa, twilio: StandInTwilio | None = None,
                     telegram: StandInTelegram | None = None, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir, "database_url": "", "redis_url": "", "rasa_url": rasa.url,
        "rasa_retry_seconds": 0.2, "public_base_url": PUBLIC_BASE, "kb_path": data_dir / "no-kb.jsonl",
        "outbox_retry_base_seconds": 0.05, "outbox_retry_max_seconds": 2.0, "log_level": "warning",
        "webchat_enabled": False,
    }
    if twilio is not None:
        values.update(twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN, twilio_from_number=FROM_NUMBER,
                      twilio_api_base_url=twilio.url)
    if telegram is not None:
        values.update(telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=TG_SECRET,
                      telegram_api_base_url=telegram.url)
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def _no_knowledge_base(_self: Any) -> None:
    """Channel tests need no KB: skip loading the embedding model (seconds of CPU per app start)."""


@asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    app = create_app(settings)
    with patch.object(KnowledgeService, "load", _no_knowledge_base), patch.object(
        KnowledgeService, "follow_other_workers", _no_knowledge_base
    ):
        async with _lifespan(app, settings) as gateway:
            yield gateway


@asynccontextmanager
async def _lifespan(app: FastAPI, settings: Settings) -> AsyncIterator[Gateway]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_BASE) as client:
            yield Gateway(app, client, settings)


async def eventually(check: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll an async or plain callable until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)
