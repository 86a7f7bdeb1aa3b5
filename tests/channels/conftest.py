"""Fixtures shared by the channel tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.channels.support import StandInRasa, StandInTwilio


@pytest.fixture
async def rasa() -> AsyncIterator[StandInRasa]:
    """A local stand-in of the Rasa server's gateway channel."""
    server = await StandInRasa().start()
    yield server
    await server.stop()


@pytest.fixture
async def twilio() -> AsyncIterator[StandInTwilio]:
    """A local stand-in of Twilio's REST API (texts, MMS media, call recordings)."""
    server = await StandInTwilio().start()
    yield server
    await server.stop()
