"""/api/studio and the /studio page under a real FastAPI app (the routers as the gateway includes them, a real
database, in-process coordination) on a temporary copy of the training data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.settings import Settings
from gateway.coordination import build_coordination
from gateway.storage import Database
from studio.api import router as studio_api
from studio.engine_ops import TRAIN_LOCK
from studio.pages import router as studio_pages
from tests.studio.support import conversation, log_turns

TOKEN = "studio-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(tmp_path: Path, project_dir: Path) -> AsyncIterator[tuple[httpx.AsyncClient, SimpleNamespace]]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    await db.migrate()
    settings = Settings(admin_token=TOKEN, studio_project_dir=project_dir, data_dir=tmp_path / "var",
                        rasa_url="http://127.0.0.1:9", rasa_models_dir=tmp_path / "models")
    tasks: set[asyncio.Task[Any]] = set()

    def spawn(coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        tasks.add(task)
        return task

    async with httpx.AsyncClient() as http:
        services = SimpleNamespace(settings=settings, db=db, coordination=build_coordination("", "t:"), http=http,
                                   spawn=spawn, tasks=tasks)
        app = FastAPI()
        app.state.services = services
        for router in (studio_api, studio_pages):
            app.include_router(router)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            yield c, services
        await asyncio.gather(*tasks, return_exceptions=True)
    await db.dispose()


async def test_every_route_needs_an_editor(client: tuple[httpx.AsyncClient, SimpleNamespace]) -> None:
    c, _ = client
    for method, path in [("GET", "/api/studio/intents"), ("POST", "/api/studio/train"),
                         ("GET", "/api/studio/review"), ("POST", "/api/studio/rollback")]:
        response = await c.request(method, path)
        assert response.status_code == 401, path
        response = await c.request(method, path, headers={"Authorization": "Bearer nope"})
        assert response.status_code == 403, path
    page = await c.get("/studio?lang=en")
    assert page.status_code == 200 and "Content studio" in page.text and "studio.js" in page.text
    assert (await c.get("/studio/static/studio.js")).status_code == 200


async def test_edit_intents_and_responses(client: tuple[httpx.AsyncClient, SimpleNamespace],
                                          project_dir: Path) -> None:
    c, _ = client
    intents = (await c.get("/api/studio/intents", headers=AUTH)).json()
    greet = next(i for i in intents if i["name"] == "greet")
    assert "你好" in greet["examples"]["zh"] and "hello" in greet["examples"]["en"]
    saved = await c.post("/api/studio/intents/greet/examples", json={"text": "hello dear city"}, headers=AUTH)
    assert saved.status_code == 201 and saved.json() == {"saved": "data/nlu/en.yml"}
    assert "    - hello dear city\n" in (project_dir / "data/nlu/en.yml").read_text()
    refused = await c.post("/api/studio/intents/greet/examples", json={"text": "hello"}, headers=AUTH)
    assert refused.status_code == 422
    assert refused.json()["detail"]["problems"] == ["'hello' is already an example of 'greet'"]
    assert (await c.post("/api/studio/intents", json={"name": "Bad"}, headers=AUTH)).status_code == 422
    moved = await c.post("/api/studio/intents/greet/examples/move", json={"text": "hello dear city", "to": "thank"},
                         headers=AUTH)
    assert moved.status_code == 200
    response = await c.put("/api/studio/responses/utter_weather", json={"zh": "明天有雨", "en": "Rain tomorrow"},
                           headers=AUTH)
    assert response.status_code == 200 and response.json() == {"saved": "domain/responses.yml"}
    listed = (await c.get("/api/studio/responses", headers=AUTH)).json()
    assert {"name": "utter_weather", "zh": "明天有雨", "en": "Rain tomorrow", "extra": []} in listed


async def test_the_review_queue_adds_a_masked_example(client: tuple[httpx.AsyncClient, SimpleNamespace],
                                                      project_dir: Path) -> None:
    c, services = client
    conv = await conversation(services.db)
    await log_turns(services.db, conv, [("我要找真人 电话13812345678", "ask_question", 0.3)])
    queue = (await c.get("/api/studio/review", headers=AUTH)).json()
    assert queue["waiting"] == 1 and queue["groups"][0]["text"] == "我要找真人 电话[电话]"
    group = queue["groups"][0]
    bad = await c.post("/api/studio/review/example", json={"keys": ["x:1"], "text": "a", "intent": "greet"},
                       headers=AUTH)
    assert bad.status_code == 422
    added = await c.post("/api/studio/review/example",
                         json={"keys": group["keys"], "text": "我要找真人 电话13812345678", "intent": "request_human"},
                         headers=AUTH)
    assert added.status_code == 201, added.text
    zh = (project_dir / "data/nlu/zh.yml").read_text()
    assert "    - 我要找真人 电话[电话]\n" in zh and "13812345678" not in zh
    assert (await c.get("/api/studio/review", headers=AUTH)).json()["waiting"] == 0


async def test_training_one_at_a_time_and_failures_are_readable(
        client: tuple[httpx.AsyncClient, SimpleNamespace], monkeypatch: pytest.MonkeyPatch) -> None:
    c, services = client
    async with services.coordination.lock(TRAIN_LOCK):
        busy = await c.post("/api/studio/train", headers=AUTH)
        assert busy.status_code == 409 and "being trained" in busy.json()["detail"]
    # Break the project: the job fails at validation with the reason, before Rasa is ever asked to train.
    en = services.settings.studio_project_dir / "data/nlu/en.yml"
    en.write_text(en.read_text().replace("    - bye\n", "    - bye\n    - hello\n", 1))
    started = await c.post("/api/studio/train", headers=AUTH)
    assert started.status_code == 202
    job_id = started.json()["id"]
    await asyncio.gather(*services.tasks)
    job = (await c.get(f"/api/studio/jobs/{job_id}", headers=AUTH)).json()
    assert job["state"] == "failed" and "'hello' is under both 'greet' and 'goodbye'" in job["error"]
    refused = await c.post(f"/api/studio/jobs/{job_id}/activate", headers=AUTH)
    assert refused.status_code == 409
    assert (await c.post("/api/studio/rollback", headers=AUTH)).status_code == 409
    models = (await c.get("/api/studio/models", headers=AUTH)).json()
    assert models == {"live": None, "can_roll_back": False, "activations": []}
