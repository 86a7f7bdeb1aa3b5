"""Fixtures of the Slack desk's tests: the Web API stand-in, a bot that hands over on request, the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.channels.support import Gateway, StandInRasa, gateway_settings, running_gateway
from tests.handoff.slack.standin import BOT_TOKEN, CHANNEL, SIGNING_SECRET, StandInSlack


class HandoffRasa(StandInRasa):
    """The stand-in bot, which hands over when asked for a person (as request_human does)."""

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(body)
        # "转人工" reaches the bot as the request itself (handoff/person_request.py hands it "/request_human").
        if body.get("message") in ("转人工", "/request_human"):
            reply = {"recipient_id": body["sender"], "text": "好的，正在为您转接人工。"}
            return web.json_response({"messages": [reply], "intent": {"name": "request_human", "confidence": 0.98},
                                      "slots_set": {"handoff_requested": True},
                                      "latest_action": "action_request_human"})
        return web.json_response({"messages": [{"recipient_id": body["sender"], "text": f"echo:{body['message']}"}],
                                  "intent": {"name": "greet", "confidence": 0.95}, "slots_set": {},
                                  "latest_action": None})


@pytest.fixture
async def slack() -> AsyncIterator[StandInSlack]:
    server = await StandInSlack().start()
    yield server
    await server.stop()


@pytest.fixture
async def handoff_rasa() -> AsyncIterator[HandoffRasa]:
    server = HandoffRasa()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def gateway(tmp_path: Path, handoff_rasa: HandoffRasa, slack: StandInSlack) -> AsyncIterator[Gateway]:
    settings = gateway_settings(
        tmp_path, handoff_rasa, service_hours="24x7", slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET, slack_handoff_channel=CHANNEL, slack_api_base_url=slack.url,
    )
    async with running_gateway(settings) as gw:
        yield gw
