"""Activation and rollback against a stand-in of the engine's HTTP API (Rasa's `/status`, `PUT /model`,
`/model/parse` wire format): a model counts as live only once the engine reports it and answers with it; a refused
or unverified swap leaves the previous model live. (The browser test does the same against the real engine.)"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gateway.coordination import build_coordination
from gateway.storage import Database
from studio.engine_ops import ActivationFailed, EngineSettings, ModelEngine
from studio.project import TrainingProject
from studio.review import ReviewQueue


class StandInEngine:
    def __init__(self, model_file: str) -> None:
        self.model_file = model_file
        self.refuse = False
        self.ignore_swap = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/status":
            return httpx.Response(200, json={"model_file": self.model_file, "model_id": "x"})
        if request.url.path == "/model" and request.method == "PUT":
            if self.refuse:
                return httpx.Response(400, json={"status": "failure", "message": "Model not found"})
            if not self.ignore_swap:
                self.model_file = Path(json.loads(request.content)["model_file"]).name
            return httpx.Response(204)
        if request.url.path == "/model/parse":
            return httpx.Response(200, json={"intent": {"name": "greet", "confidence": 0.99}})
        return httpx.Response(404)


@pytest.fixture
async def setup(tmp_path: Path, project_dir: Path):  # type: ignore[no-untyped-def]
    base_dir = tmp_path / "models"
    base_dir.mkdir()
    (base_dir / "base.tar.gz").write_bytes(b"base")
    trained = tmp_path / "studio-1-abc.tar.gz"
    trained.write_bytes(b"new")
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    await db.migrate()
    stand_in = StandInEngine("base.tar.gz")
    async with httpx.AsyncClient(transport=httpx.MockTransport(stand_in)) as http:
        engine = ModelEngine(EngineSettings("http://rasa", tmp_path / "studio", tmp_path / "cache", base_dir),
                             db, build_coordination("", "t:"), http, TrainingProject(project_dir),
                             ReviewQueue(db, 0.6))
        yield engine, stand_in, trained, base_dir
    await db.dispose()


async def test_activate_then_roll_back(setup) -> None:  # type: ignore[no-untyped-def]
    engine, stand_in, trained, base_dir = setup
    assert await engine.live_model() == str(base_dir / "base.tar.gz")
    done = await engine.activate(str(trained), "editor", job_id=1)
    assert done["model"] == "studio-1-abc.tar.gz" and done["previous"] == "base.tar.gz"
    assert stand_in.model_file == "studio-1-abc.tar.gz" and await engine.live_model() == str(trained)
    back = await engine.rollback("editor")
    assert back["kind"] == "rollback" and back["model"] == "base.tar.gz"
    assert stand_in.model_file == "base.tar.gz"


async def test_a_refused_or_unverified_swap_leaves_the_previous_model_live(setup) -> None:  # type: ignore[no-untyped-def]
    engine, stand_in, trained, base_dir = setup
    stand_in.refuse = True
    with pytest.raises(ActivationFailed, match="refused the model"):
        await engine.activate(str(trained), "editor")
    stand_in.refuse, stand_in.ignore_swap = False, True
    with pytest.raises(ActivationFailed, match="reports 'base.tar.gz'"):
        await engine.activate(str(trained), "editor")
    assert await engine.live_model() == str(base_dir / "base.tar.gz") and await engine.activations() == []
    with pytest.raises(ActivationFailed, match="no earlier model"):
        await engine.rollback("editor")
    with pytest.raises(ActivationFailed, match="is gone"):
        await engine.activate(str(trained.parent / "missing.tar.gz"), "editor")
