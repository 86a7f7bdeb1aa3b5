"""The safe-mode downgrade and query-string replays, each attack as a test.

The pushes are built as WeChat's servers build them, with wechatpy's own WeChatSigner (`signature` over token,
timestamp and nonce) and WeChatCrypto (the ciphertext and its `msg_signature`), on an in-process gateway with its real
database and pipeline. What makes the attacks possible: in plaintext mode `signature` covers only the token, timestamp
and nonce, never the body, so whoever sees a query string (a proxy's access log, a captured request) holds a
signature for any body for the rest of the timestamp window.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import xmltodict
from sqlalchemy import func, select
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from channels.wechat.connector import Forged, WeChatConnector, WeChatSettings
from gateway.coordination import InProcessCoordination, RedisCoordination
from gateway.storage import Message
from tests.channels.support import Gateway, StandInRasa, gateway_settings, running_gateway
from tests.channels.wechat.standin import ACCOUNT, AES_KEY, APP_ID, APP_SECRET, TOKEN, StandInWeChat, fixture
from tests.conftest import REDIS_URL

PATH = "/channels/wechat/webhook"
OPENID = "oBj7x5Kq3mZc_citizen_0001"
FORGED_TEXT = "我是管理员，请把工单BJ-20261123-0007的处理结果改为已办结"


def genuine_query(timestamp: int | None = None) -> dict[str, str]:
    """What WeChat puts in the query string of every push: signature over (token, timestamp, nonce)."""
    stamp, nonce = str(timestamp or int(time.time())), uuid.uuid4().hex[:10]
    signer = WeChatSigner()
    signer.add_data(TOKEN, stamp, nonce)
    return {"signature": signer.signature, "timestamp": stamp, "nonce": nonce, "openid": OPENID}


def plaintext_push(xml: str) -> tuple[dict[str, str], bytes]:
    return genuine_query(), xml.encode("utf-8")


def safe_push(xml: str) -> tuple[dict[str, str], bytes]:
    """Safe mode: the ciphertext only, `encrypt_type=aes` and `msg_signature` over the ciphertext."""
    query = genuine_query()
    sealed = xmltodict.parse(WeChatCrypto(TOKEN, AES_KEY, APP_ID).encrypt_message(
        xml, query["nonce"], query["timestamp"]))["xml"]
    query.update(encrypt_type="aes", msg_signature=sealed["MsgSignature"])
    body = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<Encrypt><![CDATA[{sealed['Encrypt']}]]></Encrypt></xml>")
    return query, body.encode("utf-8")


def text_xml(content: str, msg_id: int | None = None) -> str:
    return fixture("text", content=content, **({"msg_id": msg_id} if msg_id is not None else {}))


@pytest.fixture
async def wechat() -> AsyncIterator[StandInWeChat]:
    server = await StandInWeChat().start()
    yield server
    await server.stop()


def settings(tmp_path: Path, rasa: StandInRasa, wechat: StandInWeChat, aes_key: str) -> Any:
    return gateway_settings(tmp_path, rasa, wechat_app_id=APP_ID, wechat_app_secret=APP_SECRET, wechat_token=TOKEN,
                            wechat_encoding_aes_key=aes_key, wechat_api_base_url=wechat.url)


@pytest.fixture
async def safe_gateway(tmp_path: Path, rasa: StandInRasa, wechat: StandInWeChat) -> AsyncIterator[Gateway]:
    """An account in safe (or compatible) mode: WECHAT_ENCODING_AES_KEY is set."""
    async with running_gateway(settings(tmp_path, rasa, wechat, AES_KEY)) as gw:
        yield gw


@pytest.fixture
async def plain_gateway(tmp_path: Path, rasa: StandInRasa, wechat: StandInWeChat) -> AsyncIterator[Gateway]:
    """An account in plaintext mode: no EncodingAESKey."""
    async with running_gateway(settings(tmp_path, rasa, wechat, "")) as gw:
        yield gw


async def post(gw: Gateway, query: dict[str, str], body: bytes) -> httpx.Response:
    return await gw.client.post(PATH, params=query, content=body, headers={"Content-Type": "text/xml"})


async def settle(gw: Gateway, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [t for t in gw.services._tasks if t.get_name() == "wechat-turn"]
        if not busy:
            await gw.services.outbox.drain(max(0.01, deadline - time.monotonic()))
            return
        await asyncio.wait(busy, timeout=max(0.01, deadline - time.monotonic()))
    raise TimeoutError("gateway did not settle")


async def inbound(gw: Gateway) -> list[str]:
    async with gw.db.sessions() as session:
        return [str(t) for t in (await session.execute(
            select(Message.text).where(Message.direction == "in").order_by(Message.id))).scalars()]


def passive_text(response: httpx.Response) -> str:
    assert response.status_code == 200 and response.text != "success", (response.status_code, response.text)
    document = xmltodict.parse(response.text)["xml"]
    if "Encrypt" in document:
        xml = WeChatCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message(
            response.text, document["MsgSignature"], document["TimeStamp"], document["Nonce"])
        document = xmltodict.parse(xml)["xml"]
    return str(document["Content"])


# ---- the downgrade: a plaintext push to an account that has the AES key ------------------------------------------


async def test_a_plaintext_push_is_refused_when_the_aes_key_is_set(safe_gateway: Gateway, rasa: StandInRasa) -> None:
    # Correctly signed and fresh, exactly what WeChat would send in plaintext mode: the body is signed by nothing.
    query, body = plaintext_push(text_xml(FORGED_TEXT))
    response = await post(safe_gateway, query, body)
    assert response.status_code == 403 and FORGED_TEXT not in response.text
    # Explicitly saying "raw" changes nothing.
    query, body = plaintext_push(text_xml(FORGED_TEXT))
    assert (await post(safe_gateway, {**query, "encrypt_type": "raw"}, body)).status_code == 403
    await settle(safe_gateway)
    assert await inbound(safe_gateway) == [] and rasa.calls == []


async def test_a_captured_safe_mode_query_cannot_carry_a_plaintext_body(safe_gateway: Gateway,
                                                                        rasa: StandInRasa) -> None:
    query, body = safe_push(text_xml("你好"))
    assert passive_text(await post(safe_gateway, query, body)) == "echo:你好"
    forged = text_xml(FORGED_TEXT).encode()
    # The captured query string, stripped of its AES parameters, with a plaintext body …
    stripped = {k: v for k, v in query.items() if k not in ("encrypt_type", "msg_signature")}
    assert (await post(safe_gateway, stripped, forged)).status_code == 403
    # … or kept whole, with a plaintext body (no ciphertext for msg_signature to cover) …
    assert (await post(safe_gateway, query, forged)).status_code == 403
    # … or with the captured ciphertext and a plaintext beside it (compatible mode's shape): the plaintext is ignored.
    sealed = xmltodict.parse(body)["xml"]["Encrypt"]
    beside = text_xml(FORGED_TEXT).strip().removesuffix("</xml>") + f"<Encrypt><![CDATA[{sealed}]]></Encrypt></xml>"
    response = await post(safe_gateway, query, beside.encode())
    assert response.status_code == 403  # another body under the same timestamp and nonce
    await settle(safe_gateway)
    assert await inbound(safe_gateway) == ["你好"] and rasa.texts() == ["你好"]


# ---- replays of a plaintext-mode query string ------------------------------------------------------------------------


async def test_a_replayed_query_with_another_body_is_refused(plain_gateway: Gateway, rasa: StandInRasa) -> None:
    query, body = plaintext_push(text_xml("路灯坏了"))
    assert passive_text(await post(plain_gateway, query, body)) == "echo:路灯坏了"
    # The same query string (still inside the 5-minute window) with the forger's body, as another citizen and as
    # the same one: refused, and no passive reply goes to the forger.
    for forged in (text_xml(FORGED_TEXT),
                   fixture("text", content=FORGED_TEXT, openid="oBj7x5Kq3mZc_someone_else")):
        response = await post(plain_gateway, query, forged.encode())
        assert response.status_code == 403 and "echo" not in response.text
    await settle(plain_gateway)
    assert await inbound(plain_gateway) == ["路灯坏了"] and rasa.texts() == ["路灯坏了"]


async def test_a_handshake_query_cannot_sign_a_push(plain_gateway: Gateway, rasa: StandInRasa) -> None:
    # The server-verification GET carries the same signature a plaintext push with its timestamp and nonce would.
    query = {k: v for k, v in genuine_query().items() if k != "openid"}
    handshake = {**query, "echostr": "echo-20261123"}
    for _ in range(2):  # replaying the GET itself is harmless and still answered
        response = await plain_gateway.client.get(PATH, params=handshake)
        assert response.status_code == 200 and response.text == "echo-20261123"
    response = await post(plain_gateway, query, text_xml(FORGED_TEXT).encode())
    assert response.status_code == 403
    await settle(plain_gateway)
    assert await inbound(plain_gateway) == [] and rasa.calls == []


# ---- WeChat's own retries still get their answer -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plaintext", "safe"])
async def test_wechats_genuine_retry_gets_success_and_is_stored_once(tmp_path: Path, rasa: StandInRasa,
                                                                    wechat: StandInWeChat, mode: str) -> None:
    xml = text_xml("我要办居住证", msg_id=24123456789012345)
    query, body = plaintext_push(xml) if mode == "plaintext" else safe_push(xml)
    async with running_gateway(settings(tmp_path, rasa, wechat, "" if mode == "plaintext" else AES_KEY)) as gw:
        assert passive_text(await post(gw, query, body)) == "echo:我要办居住证"
        # WeChat did not get that answer in time and retries: same query string, same body.
        for _ in range(2):
            retry = await post(gw, query, body)
            assert retry.status_code == 200 and retry.text == "success"
        # Two retries racing each other (WeChat's and a proxy's), after the first was answered.
        both = await asyncio.gather(post(gw, query, body), post(gw, query, body))
        assert [r.text for r in both] == ["success", "success"]
        await settle(gw)
        assert await inbound(gw) == ["我要办居住证"]
        assert rasa.texts() == ["我要办居住证"] and wechat.custom == []


async def test_concurrent_first_deliveries_of_one_push_are_not_mistaken_for_a_replay(
    plain_gateway: Gateway, rasa: StandInRasa
) -> None:
    query, body = plaintext_push(text_xml("你好", msg_id=24123456789099999))
    responses = await asyncio.gather(*(post(plain_gateway, query, body) for _ in range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert sum(r.text != "success" for r in responses) == 1  # one passive reply, the others "success"
    await settle(plain_gateway)
    async with plain_gateway.db.sessions() as session:
        stored = (await session.execute(select(func.count()).select_from(Message)
                                        .where(Message.direction == "in"))).scalar_one()
    assert stored == 1


# ---- several workers agree -----------------------------------------------------------------------------------------


def connector(coordination: Any) -> WeChatConnector:
    return WeChatConnector(WeChatSettings(APP_ID, APP_SECRET, TOKEN), coordination, httpx.AsyncClient())


@pytest.mark.redis
async def test_workers_sharing_redis_agree_on_a_replay(redis_prefix: str) -> None:
    first = RedisCoordination(REDIS_URL, key_prefix=redis_prefix)
    second = RedisCoordination(REDIS_URL, key_prefix=redis_prefix)
    worker_a, worker_b = connector(first), connector(second)
    try:
        query, body = plaintext_push(text_xml("你好"))
        assert (await worker_a.admit(query, body)).xml.startswith("<xml>")
        assert (await worker_b.admit(query, body)).xml  # WeChat's retry landing on another worker
        with pytest.raises(Forged, match="another body"):
            await worker_b.admit(query, text_xml(FORGED_TEXT).encode())
        # The memory lasts the timestamp window, under the coordination's own prefix.
        key = f"wechat:nonce:{APP_ID}:{query['timestamp']}:{query['nonce']}"
        assert await second.get(key) is not None
    finally:
        for c in (worker_a, worker_b):
            await c.http.aclose()
        await first.close()
        await second.close()


async def test_a_stale_query_is_refused_before_anything_is_remembered() -> None:
    coordination = InProcessCoordination()
    worker = connector(coordination)
    try:
        query = genuine_query(timestamp=int(time.time()) - 3600)
        with pytest.raises(Forged, match="stale"):
            await worker.admit(query, text_xml("你好").encode())
        assert await coordination.get(f"wechat:nonce:{APP_ID}:{query['timestamp']}:{query['nonce']}") is None
    finally:
        await worker.http.aclose()
