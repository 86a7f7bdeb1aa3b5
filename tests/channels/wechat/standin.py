"""A local stand-in of api.weixin.qq.com, and a WeChat server that pushes signed (and encrypted) messages.

StandInWeChat speaks the API's JSON wire format: /cgi-bin/token issues access_tokens (`expire_tokens()` makes the
issued ones answer 42001, as WeChat does when one expires), /cgi-bin/message/custom/send and /template/send record
what was sent (openids in `outside_window` get 45015, those in `unsubscribed` 43004), /cgi-bin/menu/create records
the menu, /cgi-bin/media/get serves a citizen's photo or voice note. `failures` are errcodes (or 500) answered to
sends before they succeed. Bodies must be UTF-8 JSON without \\u escapes (what WeChat shows literally).

WeChatPush builds what WeChat's servers post: the query (signature, timestamp, nonce, openid, and in AES modes
encrypt_type and msg_signature) and the body, encrypted with wechatpy's own WeChatCrypto.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xmltodict
from aiohttp import web
from wechatpy.crypto import WeChatCrypto

from app.launch import free_port

APP_ID = "wx5f3c2a1b0e9d8c7b"
APP_SECRET = "wechat-app-secret-0123456789abcdef"
TOKEN = "binjiangWeChatToken2026"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat issues them
TEMPLATE_ID = "tpl-work-order-progress-8XyZ"
ACCOUNT = "gh_0b1c2d3e4f5a"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + b"\x00" * 200 + b"\xff\xd9"
AMR = b"#!AMR\n" + b"\x3c" * 320


def fixture(name: str, **values: Any) -> str:
    """A fixture's XML with its placeholders filled (openid, create_time, msg_id default to fresh values)."""
    values.setdefault("openid", "oBj7x5Kq3mZc_citizen_0001")
    values.setdefault("create_time", int(time.time()))
    values.setdefault("msg_id", 24000000000000000 + uuid.uuid4().int % 10**15)
    return (FIXTURES / f"{name}.xml").read_text(encoding="utf-8").format(**values)


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


@dataclass
class WeChatPush:
    """What WeChat's servers send to the webhook, in one of the three modes."""

    token: str = TOKEN
    aes_key: str = AES_KEY
    app_id: str = APP_ID

    def handshake(self, echostr: str = "echo-5577") -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
        return {"signature": sign(self.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
                "echostr": echostr}

    def _query(self, openid: str) -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
        return {"signature": sign(self.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
                "openid": openid}

    def plaintext(self, xml: str) -> tuple[dict[str, str], bytes]:
        return self._query(_openid(xml)), xml.encode("utf-8")

    def safe(self, xml: str, compatible: bool = False) -> tuple[dict[str, str], bytes]:
        """Safe mode (only the ciphertext), or compatible mode (the plaintext fields beside it)."""
        query = self._query(_openid(xml))
        crypto = WeChatCrypto(self.token, self.aes_key, self.app_id)
        sealed = xmltodict.parse(crypto.encrypt_message(xml, query["nonce"], query["timestamp"]))["xml"]
        query.update(encrypt_type="aes", msg_signature=sealed["MsgSignature"])
        # The signature over (token, timestamp, nonce) is the same; msg_signature also covers the ciphertext.
        assert sealed["TimeStamp"] == query["timestamp"]
        if compatible:
            plain = xml.strip()
            body = plain[: plain.rindex("</xml>")] + f"<Encrypt><![CDATA[{sealed['Encrypt']}]]></Encrypt></xml>"
        else:
            body = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
                    f"<Encrypt><![CDATA[{sealed['Encrypt']}]]></Encrypt></xml>")
        return query, body.encode("utf-8")

    def open_reply(self, body: str) -> dict[str, Any]:
        """Decrypt (and check the signature of) an encrypted passive reply, as WeChat would."""
        sealed = xmltodict.parse(body)["xml"]
        crypto = WeChatCrypto(self.token, self.aes_key, self.app_id)
        xml = crypto.decrypt_message(body, sealed["MsgSignature"], sealed["TimeStamp"], sealed["Nonce"])
        return dict(xmltodict.parse(xml)["xml"])


def _openid(xml: str) -> str:
    return str(xmltodict.parse(xml)["xml"]["FromUserName"])


@dataclass
class StandInWeChat:
    url: str = ""
    expires_in: int = 7200
    token_fetches: int = 0
    custom: list[dict[str, Any]] = field(default_factory=list)  # message/custom/send bodies accepted
    templates: list[dict[str, Any]] = field(default_factory=list)
    menus: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[tuple[str, str]] = field(default_factory=list)  # (path, errcode) of every send
    failures: list[int] = field(default_factory=list)  # errcodes (or 500) answered to sends first
    outside_window: set[str] = field(default_factory=set)
    unsubscribed: set[str] = field(default_factory=set)
    _valid: set[str] = field(default_factory=set)
    _expired: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(400000001))

    def expire_tokens(self) -> None:
        self._expired |= self._valid
        self._valid.clear()

    def custom_texts(self, openid: str | None = None) -> list[str]:
        return [b["text"]["content"] for b in self.custom if openid is None or b["touser"] == openid]

    async def _token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("grant_type") != "client_credential" or q.get("appid") != APP_ID:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        if q.get("secret") != APP_SECRET:
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        self.token_fetches += 1
        token = f"ACCESS_TOKEN_{self.token_fetches}_{uuid.uuid4().hex[:8]}"
        self._valid.add(token)
        return web.json_response({"access_token": token, "expires_in": self.expires_in})

    def _token_error(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token", "")
        if token in self._expired:
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        if token not in self._valid:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"})
        return None

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        assert b"\\u" not in raw, "WeChat wants UTF-8 JSON, not \\u escapes"
        data: dict[str, Any] = json.loads(raw.decode("utf-8"))
        return data

    async def _send(self, request: web.Request) -> web.Response:
        path = request.path
        error = self._token_error(request)
        if error is not None:
            self.attempts.append((path, str(json.loads(error.text or "{}")["errcode"])))
            return error
        body = await self._body(request)
        if self.failures:
            code = self.failures.pop(0)
            self.attempts.append((path, str(code)))
            if code == 500:
                return web.Response(status=500, text="Internal Server Error")
            return web.json_response({"errcode": code, "errmsg": "stand-in failure"})
        if body.get("touser") in self.unsubscribed:
            self.attempts.append((path, "43004"))
            return web.json_response({"errcode": 43004, "errmsg": "require subscribe"})
        if path.endswith("/custom/send"):
            if body.get("touser") in self.outside_window:
                self.attempts.append((path, "45015"))
                return web.json_response({"errcode": 45015, "errmsg": "response out of time limit"})
            content = body.get("text", {}).get("content", "")
            if len(content.encode("utf-8")) > 2048:
                return web.json_response({"errcode": 45002, "errmsg": "content size out of limit"})
            self.attempts.append((path, "0"))
            self.custom.append(body)
            return web.json_response({"errcode": 0, "errmsg": "ok"})
        if body.get("template_id") != TEMPLATE_ID:
            self.attempts.append((path, "40037"))
            return web.json_response({"errcode": 40037, "errmsg": "invalid template_id"})
        self.attempts.append((path, "0"))
        self.templates.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": next(self._ids)})

    async def _menu(self, request: web.Request) -> web.Response:
        error = self._token_error(request)
        if error is not None:
            return error
        self.menus.append(await self._body(request))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _media(self, request: web.Request) -> web.Response:
        error = self._token_error(request)
        if error is not None:
            return error
        media_id = request.query.get("media_id", "")
        if media_id.startswith("img-"):
            return web.Response(body=JPEG, content_type="image/jpeg",
                                headers={"Content-disposition": f'attachment; filename="{media_id}.jpg"'})
        if media_id.startswith("voice-"):
            return web.Response(body=AMR, content_type="audio/amr")
        return web.json_response({"errcode": 40007, "errmsg": "invalid media_id"})

    async def start(self) -> StandInWeChat:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/custom/send", self._send)
        app.router.add_post("/cgi-bin/message/template/send", self._send)
        app.router.add_post("/cgi-bin/menu/create", self._menu)
        app.router.add_get("/cgi-bin/media/get", self._media)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
