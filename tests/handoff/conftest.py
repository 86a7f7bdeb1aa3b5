"""Fixtures of the handoff tests: a pipeline with a scripted bot and the handoff service on the `database` fixture
(SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from gateway.calendar import WorkingCalendar
from gateway.coordination import InProcessCoordination
from gateway.language import LanguageTagger
from gateway.metrics import build_metrics
from gateway.pipeline import Pipeline
from gateway.storage import Database
from handoff.agents import AgentStore
from handoff.service import HandoffService, HandoffSettings
from tests.handoff.support import ScriptedBot


@pytest.fixture
def bot() -> ScriptedBot:
    return ScriptedBot()


@pytest.fixture
def pipeline(database: Database, bot: ScriptedBot) -> Pipeline:
    return Pipeline(database, InProcessCoordination(), bot, LanguageTagger(), build_metrics())  # type: ignore[arg-type]


@pytest.fixture
def handoff(database: Database, pipeline: Pipeline) -> HandoffService:
    service = HandoffService(database, pipeline.coordination, pipeline, AgentStore(database),
                             WorkingCalendar.parse("24x7"), HandoffSettings("hotline", 60.0, 0.3))
    pipeline.use(before=[service.before_turn], after=[service.after_turn])  # as app/hooks.py places them
    return service
