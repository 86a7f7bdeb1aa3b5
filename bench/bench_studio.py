"""The content studio: review-queue load time with 100,000 logged turns, and the time from "train" to a live model.

- Review queue: `ReviewQueue.groups()` (select the unsure turns, mask, group, order) over 100,000 logged citizen turns
  (a fifth of them unsure) in a SQLite file, against a plain SELECT of the same 100,000 rows' text and JSON.
- Train to live: the studio's job (quick checks + `rasa data validate`, `rasa train`, evaluation of both models on
  the same examples, then the engine's model replace and the check that it answers) on a copy of training_data/ with
  one new example, against a bare `rasa train` of the same kind of change (one other new example), same cache.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert, select

from app.launch import free_port
from bench.stats import table
from bot import server
from bot.training import CONFIG_FILE, ensure_model
from gateway.coordination import build_coordination
from gateway.settings import PROJECT_ROOT
from gateway.storage import ChannelIdentity, Contact, Conversation, Database, Message
from studio.engine_ops import EngineSettings, ModelEngine
from studio.project import TrainingProject, engine_environment
from studio.review import ReviewQueue

TURNS = 100_000
UNSURE_SHARE = 0.2
REPEATS = 3
PHRASES = ["社保卡丢了怎么办", "公积金能不能取出来装修", "路灯坏了", "my water bill is wrong", "居住证要多久",
           "垃圾几点收", "噪音扰民 晚上施工", "how do i renew my permit", "孩子上学要什么材料", "停车费怎么交"]
SURE = ["你好", "谢谢", "hello", "bye"]


async def _fill(db: Database) -> None:
    rng = random.Random(7)
    async with db.sessions() as session, session.begin():
        contact = Contact()
        session.add(contact)
        await session.flush()
        identity = ChannelIdentity(contact_id=contact.id, channel="rest", channel_account="rest",
                                   external_user_id="bench")
        session.add(identity)
        await session.flush()
        conversations = []
        for _ in range(2000):
            conv = Conversation(contact_id=contact.id, identity_id=identity.id, channel="rest")
            session.add(conv)
            conversations.append(conv)
        await session.flush()
        conversation_ids = [c.id for c in conversations]
    start = datetime.now(UTC) - timedelta(days=30)
    rows = []
    for i in range(TURNS):
        unsure = rng.random() < UNSURE_SHARE
        text = f"{rng.choice(PHRASES)} {rng.randint(1, 500)}" if unsure else rng.choice(SURE)
        meta = {"intent": "nlu_fallback" if unsure and i % 2 else ("ask_question" if unsure else "greet"),
                "confidence": rng.uniform(0.2, 0.55) if unsure else rng.uniform(0.8, 1.0),
                "kb_article_ids": None, "work_order_id": None, "conversation_status": "bot"}
        rows.append({"conversation_id": conversation_ids[i % len(conversation_ids)], "direction": "in",
                     "sender": "citizen", "channel": "rest", "channel_account": "rest",
                     "external_id": uuid.uuid4().hex, "text": text, "language": "zh", "payload": {"meta": meta},
                     "turn_state": "done", "created_at": start + timedelta(seconds=i * 25)})
    async with db.sessions() as session, session.begin():
        for chunk in range(0, len(rows), 5000):
            await session.execute(insert(Message), rows[chunk : chunk + 5000])


async def _queue_bench(directory: Path) -> list[list[object]]:
    db = Database(f"sqlite+aiosqlite:///{directory / 'bench.db'}")
    await db.migrate()
    await _fill(db)
    queue = ReviewQueue(db, 0.6)
    plain, studio = [], []
    groups: list[dict[str, object]] = []
    waiting = 0
    for _ in range(REPEATS):
        started = time.perf_counter()
        async with db.sessions() as session:
            rows = (await session.execute(select(Message.id, Message.text, Message.payload))).all()
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        groups, waiting = await queue.groups()
        studio.append(time.perf_counter() - started)
    await db.dispose()
    base, ours = statistics.median(plain), statistics.median(studio)
    return [
        ["plain SELECT of all turns (baseline)", f"{len(rows):,}", f"{base * 1000:.0f}", "1.00"],
        [f"review queue ({waiting:,} unsure → {len(groups)} groups shown)", f"{TURNS:,}", f"{ours * 1000:.0f}",
         f"{ours / base:.2f}"],
    ]


def _bare_train(project: Path, out: Path, cache: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [str(server.RASA_BIN), "train", "--config", str(PROJECT_ROOT / CONFIG_FILE), "--domain",
         str(project / "domain"), "--data", str(project / "data"), "--out", str(out), "--fixed-model-name", "bare"],
        cwd=PROJECT_ROOT, env={**engine_environment(), "RASA_CACHE_DIRECTORY": str(cache)},
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - started


async def _studio_train(engine: ModelEngine) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    job_id, lock = await engine.start_training("bench")
    await engine.run_job(job_id, lock)
    job = await engine.job(job_id)
    assert job is not None and job.state == "ready" and job.model_path, job.error if job else "no job"
    trained = time.perf_counter()
    await engine.activate(job.model_path, "bench", job_id=job_id)
    done = time.perf_counter()
    evaluation = job.evaluation or {}
    return done - started, {"train+evaluate": trained - started, "activate": done - trained,
                            "evaluate": float(evaluation.get("seconds", 0.0))}


async def _train_bench(directory: Path) -> list[list[object]]:
    model = ensure_model(PROJECT_ROOT, PROJECT_ROOT / "models", server.RASA_BIN)
    cache = PROJECT_ROOT / "models" / "cache"
    projects = []
    run = uuid.uuid4().hex[:6]  # a new example each run: Rasa's cache must not hand back last run's model
    for name, example in (("bare", f"唔该晒 真系帮大忙 {run}"), ("studio", f"多谢晒 真系帮大忙 {run}")):
        project = directory / name
        shutil.copytree(PROJECT_ROOT / "training_data", project)
        TrainingProject(project).add_example("thank", example)
        projects.append(project)
    bare = _bare_train(projects[0], directory / "bare-out", cache)

    port = free_port()
    rasa = server.start_rasa(model, port, "http://127.0.0.1:9/actions/webhook", directory / "rasa.log")
    try:
        server.wait_until_ready(f"http://127.0.0.1:{port}", 600, rasa)
        db = Database(f"sqlite+aiosqlite:///{directory / 'train.db'}")
        await db.migrate()
        async with httpx.AsyncClient() as http:
            engine = ModelEngine(
                EngineSettings(f"http://127.0.0.1:{port}", directory / "studio-models", cache, model.parent),
                db, build_coordination("", "bench:"), http, TrainingProject(projects[1]), ReviewQueue(db, 0.6),
            )
            total, parts = await _studio_train(engine)
        await db.dispose()
    finally:
        server.stop(rasa)
    return [
        ["bare `rasa train` (baseline)", f"{bare:.0f}", "1.00", ""],
        ["studio: validate, train, evaluate, activate", f"{total:.0f}", f"{total / bare:.2f}",
         ", ".join(f"{k} {v:.0f} s" for k, v in parts.items())],
    ]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-studio-") as tmp:
        directory = Path(tmp)
        rows = asyncio.run(_queue_bench(directory))
        print(table(["review queue load", "turns", "median ms", "ratio"], rows), flush=True)
        rows = asyncio.run(_train_bench(directory))
        print(table(["train → live model", "seconds", "ratio", "parts"], rows), flush=True)


if __name__ == "__main__":
    main()
