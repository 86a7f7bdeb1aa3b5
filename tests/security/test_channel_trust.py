"""Attacks on the channels' trust, each as a test against a real app (create_app with the channels configured, a
stand-in of Rasa's gateway channel): identity from metadata, shared idempotency keys, forged action calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.contacts import ContactMerge
from gateway.storage import ChannelIdentity, Contact, Message
from tests.channels.support import (
    StandInRasa,
    StandInTwilio,
    gateway_settings,
    running_gateway,
    sms_form,
)

VICTIM_PHONE = "+8613800000001"


async def _contact_of(db: Any, channel: str, user: str) -> str:
    async with db.sessions() as session:
        return str((await session.execute(
            select(ChannelIdentity.contact_id).where(ChannelIdentity.channel == channel,
                                                     ChannelIdentity.external_user_id == user)
        )).scalar_one())


async def test_rest_metadata_never_becomes_identity(tmp_path: Path, rasa: StandInRasa) -> None:
    """A stranger naming a citizen's phone in metadata stays a stranger: no merge into the citizen's contact,
    and the bot is told the stranger's own contact (so "my work order" finds nothing of the citizen's)."""
    twilio = await StandInTwilio().start()
    try:
        async with running_gateway(gateway_settings(tmp_path, rasa, twilio)) as gateway:
            response = await gateway.post_sms(sms_form("你好", sender=VICTIM_PHONE))  # the citizen, vouched by Twilio
            assert response.status_code == 200
            await gateway.settle()
            victim = await _contact_of(gateway.db, "sms", VICTIM_PHONE)

            for claim in ({"verified_phone": VICTIM_PHONE}, {"phone": VICTIM_PHONE, "contact_id": victim},
                          {"verified_phone": VICTIM_PHONE, "thread": "x", "vendor_opt_out": "stop"}):
                reply = await gateway.client.post("/channels/rest/webhook", json={
                    "sender": "stranger", "message": "我的工单处理得怎么样了？", "metadata": claim})
                assert reply.status_code == 200
            stranger = await _contact_of(gateway.db, "rest", "stranger")
            assert stranger != victim
            assert {c["metadata"]["contact_id"] for c in rasa.calls if c["metadata"]["channel"] == "rest"} == {stranger}
            assert all("phone" not in c["metadata"] for c in rasa.calls if c["metadata"]["channel"] == "rest")
            async with gateway.db.sessions() as session:
                assert (await session.execute(select(ContactMerge))).scalars().all() == []
                assert (await session.get(Contact, stranger)).phone is None  # type: ignore[union-attr]
                stored = (await session.execute(select(Message).where(
                    Message.channel == "rest", Message.direction == "in"))).scalars().first()
                assert stored is not None and "verified_phone" not in stored.payload
                assert stored.payload["metadata"] == {"client": {"verified_phone": VICTIM_PHONE}}  # kept as data
    finally:
        await twilio.stop()


async def test_a_trusted_integration_may_vouch_for_a_phone(tmp_path: Path, rasa: StandInRasa) -> None:
    settings = gateway_settings(tmp_path, rasa, rest_channel_token="integration-token-123",
                                rest_channel_trusted=True)
    async with running_gateway(settings) as gateway:
        body = {"sender": "crm-42", "message": "你好", "metadata": {"verified_phone": VICTIM_PHONE}}
        assert (await gateway.client.post("/channels/rest/webhook", json=body)).status_code == 401
        ok = await gateway.client.post("/channels/rest/webhook", json=body,
                                       headers={"Authorization": "Bearer integration-token-123"})
        assert ok.status_code == 200
        contact = await _contact_of(gateway.db, "rest", "crm-42")
        async with gateway.db.sessions() as session:
            assert (await session.get(Contact, contact)).phone == VICTIM_PHONE  # type: ignore[union-attr]


async def test_a_trusted_flag_without_a_token_trusts_nobody(tmp_path: Path, rasa: StandInRasa) -> None:
    async with running_gateway(gateway_settings(tmp_path, rasa, rest_channel_trusted=True)) as gateway:
        body = {"sender": "anyone", "message": "你好", "metadata": {"verified_phone": VICTIM_PHONE}}
        assert (await gateway.client.post("/channels/rest/webhook", json=body)).status_code == 200
        contact = await _contact_of(gateway.db, "rest", "anyone")
        async with gateway.db.sessions() as session:
            assert (await session.get(Contact, contact)).phone is None  # type: ignore[union-attr]


async def test_idempotency_keys_are_scoped_to_the_sender(tmp_path: Path, rasa: StandInRasa) -> None:
    async with running_gateway(gateway_settings(tmp_path, rasa)) as gateway:
        client = gateway.client
        first = await client.post("/channels/rest/webhook", headers={"Idempotency-Key": "k-1"},
                                  json={"sender": "alice", "message": "我的身份证号是110101199003078515"})
        # Another sender reusing the key is another message: its own turn, never alice's replies.
        second = await client.post("/channels/rest/webhook", headers={"Idempotency-Key": "k-1"},
                                   json={"sender": "mallory", "message": "hello"})
        assert first.json()[0]["text"].startswith("echo:我的身份证号")
        assert second.json()[0]["text"] == "echo:hello"
        assert rasa.texts() == ["我的身份证号是110101199003078515", "hello"]
        # The same again by metadata.message_id, and alice's own retry is still answered once.
        third = await client.post("/channels/rest/webhook", json={
            "sender": "mallory", "message": "again", "metadata": {"message_id": "k-1"}})
        assert third.json()[0]["text"] == "echo:hello"  # mallory's own first answer
        retry = await client.post("/channels/rest/webhook", headers={"Idempotency-Key": "k-1"},
                                  json={"sender": "alice", "message": "我的身份证号是110101199003078515"})
        assert retry.json() == first.json()
        assert len(rasa.calls) == 2


async def test_forged_action_calls_are_refused(tmp_path: Path, rasa: StandInRasa) -> None:
    call = {
        "next_action": "action_check_work_order_status", "sender_id": "x", "version": "3.6.21",
        "tracker": {"sender_id": "x", "slots": {}, "latest_message": {
            "text": "BJ-20261123-0007", "intent": {"name": "check_work_order_status"}, "entities": [],
            "metadata": {"contact_id": "someone-else"}}, "events": [], "paused": False,
            "latest_event_time": 0, "followup_action": None, "active_loop": {}, "latest_action_name": None},
        "domain": {},
    }
    async with running_gateway(gateway_settings(tmp_path, rasa, actions_token="the-real-actions-token")) as gateway:
        for headers in ({}, {"Authorization": "Bearer guess"}, {"Authorization": "the-real-actions-token"}):
            refused = await gateway.client.post("/actions/webhook", json=call, headers=headers)
            assert refused.status_code == 401, refused.text
        accepted = await gateway.client.post("/actions/webhook", json=call,
                                             headers={"Authorization": "Bearer the-real-actions-token"})
        assert accepted.status_code in (200, 503)  # 503: the test app has no executor ready; never 401


async def test_an_open_rest_channel_is_rate_limited_and_a_token_is_checked_before_parsing(
    tmp_path: Path, rasa: StandInRasa,
) -> None:
    async with running_gateway(gateway_settings(tmp_path, rasa, rest_channel_rate_per_minute=3)) as gateway:
        codes = [(await gateway.client.post("/channels/rest/webhook", json={"sender": f"s{i}", "message": "hi"})
                  ).status_code for i in range(4)]
        assert codes == [200, 200, 200, 429]
    async with running_gateway(gateway_settings(tmp_path, rasa, rest_channel_token="t0ken-abcdef")) as gateway:
        # A stranger without the token learns nothing about the body's shape: 401, not 422.
        refused = await gateway.client.post("/channels/rest/webhook", content=b"{not json")
        assert refused.status_code == 401
        bad = await gateway.client.post("/channels/rest/webhook", content=b"{not json",
                                        headers={"Authorization": "Bearer t0ken-abcdef"})
        assert bad.status_code == 422 and bad.json()["detail"] == "invalid request"
