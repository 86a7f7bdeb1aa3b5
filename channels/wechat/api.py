"""The WeChat official-account API (api.weixin.qq.com) as the gateway calls it: access_token and JSON calls.

The access_token is fetched with the app id and secret, cached in coordination (Redis when configured, so every
worker shares one token: each fetch invalidates the previous one at WeChat after a short grace period) with a TTL
that ends before WeChat's expiry, fetched by one worker at a time under a lock, and refreshed once when a call says
the token is invalid or expired (40001, 42001, 40014); that call is then retried once with the new token.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from gateway.coordination import Coordination

log = structlog.get_logger(__name__)

PRODUCTION_BASE_URL = "https://api.weixin.qq.com"
INVALID_TOKEN_CODES = frozenset({40001, 40014, 42001})
# Refresh this long before WeChat's own expiry (7,200 s): in-flight calls never carry a token about to die.
EXPIRY_MARGIN_SECONDS = 300.0


class WeChatApiError(Exception):
    """WeChat answered with a non-zero errcode (or not with JSON at all)."""

    def __init__(self, errcode: int, errmsg: str, http_status: int = 200) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.http_status = http_status


@dataclass
class AccessTokens:
    """The shared access_token of one official account."""

    app_id: str
    app_secret: str
    coordination: Coordination
    http: httpx.AsyncClient
    base_url: str = PRODUCTION_BASE_URL

    @property
    def _key(self) -> str:
        return f"wechat:access_token:{self.app_id}"

    async def get(self) -> str:
        cached = await self.coordination.get(self._key)
        if cached:
            return cached
        async with self.coordination.lock(f"wechat:token-refresh:{self.app_id}", hold_seconds=30, wait_seconds=30):
            cached = await self.coordination.get(self._key)  # another worker fetched it while we waited
            if cached:
                return cached
            return await self._fetch()

    async def invalidate(self, bad_token: str) -> None:
        """Forget `bad_token` (only if it is still the cached one: another worker may have refreshed already)."""
        async with self.coordination.lock(f"wechat:token-refresh:{self.app_id}", hold_seconds=30, wait_seconds=30):
            if await self.coordination.get(self._key) == bad_token:
                await self.coordination.delete(self._key)

    async def _fetch(self) -> str:
        response = await self.http.get(
            f"{self.base_url}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.app_id, "secret": self.app_secret},
        )
        data = _json(response)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeChatApiError(int(data.get("errcode") or -1), str(data.get("errmsg") or "no access_token"),
                                 response.status_code)
        expires_in = float(data.get("expires_in") or 7200)
        ttl = max(expires_in - EXPIRY_MARGIN_SECONDS, expires_in / 2)
        await self.coordination.set(self._key, token, ttl_seconds=ttl)
        log.info("wechat.token_fetched", app_id=self.app_id, ttl_seconds=round(ttl))
        return token


@dataclass
class WeChatApi:
    """JSON calls with the access_token, refreshed once on an invalid-token answer."""

    tokens: AccessTokens
    http: httpx.AsyncClient
    base_url: str = PRODUCTION_BASE_URL

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` as UTF-8 JSON (unescaped: WeChat shows \\u escapes literally in menus) and return the answer."""
        content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        for attempt in (1, 2):
            token = await self.tokens.get()
            response = await self.http.post(
                f"{self.base_url}{path}", params={"access_token": token}, content=content,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            data = _json(response)
            code = int(data.get("errcode") or 0)
            if code in INVALID_TOKEN_CODES and attempt == 1:
                log.warning("wechat.token_rejected", errcode=code, path=path)
                await self.tokens.invalidate(token)
                continue
            if code != 0:
                raise WeChatApiError(code, str(data.get("errmsg") or ""), response.status_code)
            return data
        raise AssertionError("unreachable")

    async def media(self, media_id: str) -> tuple[str | None, AsyncIterator[bytes]]:
        """Stream a temporary media file (a citizen's photo or voice note) by its MediaId."""
        for attempt in (1, 2):
            token = await self.tokens.get()
            request = self.http.build_request(
                "GET", f"{self.base_url}/cgi-bin/media/get", params={"access_token": token, "media_id": media_id}
            )
            response = await self.http.send(request, stream=True, follow_redirects=True)
            mime = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if response.status_code == 200 and mime not in ("application/json", "text/plain"):
                return mime or None, _chunks(response)
            # Errors come back as JSON with status 200.
            await response.aread()
            await response.aclose()
            data = _json(response)
            code = int(data.get("errcode") or -1)
            if code in INVALID_TOKEN_CODES and attempt == 1:
                await self.tokens.invalidate(token)
                continue
            raise WeChatApiError(code, str(data.get("errmsg") or "media not available"), response.status_code)
        raise AssertionError("unreachable")


async def _chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    finally:
        await response.aclose()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise WeChatApiError(-1, f"not JSON (HTTP {response.status_code})", response.status_code) from exc
    if not isinstance(data, dict):
        raise WeChatApiError(-1, "not a JSON object", response.status_code)
    if response.status_code >= 500 and not data.get("errcode"):
        raise WeChatApiError(-1, f"HTTP {response.status_code}", response.status_code)
    return data
