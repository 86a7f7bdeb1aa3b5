"""The department classifier: the knowledge base's vote and the nearest written reports, averaged; orders a
dispatcher re-routed join the examples (on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from app.dispatch import DispatchClassifier
from crm_adapter.models import Department, WorkOrder, WorkOrderStep
from gateway.storage import Contact, Database

WORDS = ("井盖", "公交", "燃气", "工资")


def vector(text: str) -> np.ndarray:
    """A toy sentence model: one axis per word it knows, normalised."""
    v = np.array([1.0 if w in text else 0.0 for w in WORDS] + [0.1], dtype=np.float32)
    return v / np.linalg.norm(v)


@dataclass
class ToyEmbedder:
    fingerprint: str = "toy"
    dim: int = len(WORDS) + 1
    calls: list[int] = field(default_factory=list)

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return np.stack([vector(t) for t in texts])


@dataclass
class ToyIndex:
    embedder: ToyEmbedder = field(default_factory=ToyEmbedder)

    def encode_query(self, text: str) -> np.ndarray:
        return vector(text)


@dataclass
class Hit:
    article: Any
    score: float


@dataclass
class Article:
    department: str


@dataclass
class ToyKnowledge:
    hits: list[Hit]
    index: ToyIndex = field(default_factory=ToyIndex)

    async def search(self, _text: str, **_kw: Any) -> Any:
        return type("Result", (), {"hits": self.hits})()


def examples(tmp_path: Path) -> Path:
    path = tmp_path / "examples.jsonl"
    rows = [("井盖翘起来了", "urban_management"), ("井盖丢了很危险", "urban_management"),
            ("公交车不按时来", "transport"), ("燃气味很大", "utilities")]
    path.write_text("\n".join(json.dumps({"text": t, "department": d}, ensure_ascii=False) for t, d in rows))
    return path


async def test_the_written_reports_outvote_a_misleading_knowledge_base(database: Database, tmp_path: Path) -> None:
    knowledge = ToyKnowledge([Hit(Article("transport"), 0.9), Hit(Article("urban_management"), 0.3)])
    classifier = DispatchClassifier(knowledge, database, examples(tmp_path), neighbours=2)  # type: ignore[arg-type]
    # Until the examples are embedded (in the background), the knowledge base's vote alone decides.
    assert (await classifier("公交站旁边的井盖翘起来了"))[0][0] == "transport"
    await classifier.wait_loaded()
    ranked = await classifier("公交站旁边的井盖翘起来了")
    assert ranked[0][0] == "urban_management" and 0.5 < ranked[0][1] < 1.0
    assert abs(sum(share for _, share in ranked) - 1.0) < 1e-3
    await classifier("又一个井盖")
    assert knowledge.index.embedder.calls == [4]  # embedded once, not per report


async def test_a_dispatchers_correction_becomes_an_example(database: Database, tmp_path: Path) -> None:
    async with database.sessions() as session, session.begin():
        session.add_all([Contact(id="c"), Department(code="social_security", name_zh="人社", name_en="HR"),
                         Department(code="dispatch", name_zh="派单", name_en="Dispatch")])
        await session.flush()
        now = datetime.now(UTC)
        order = WorkOrder(number="BJ-1", category="report", title="t", description="老板拖欠工资三个月",
                          contact_id="c", channel="sms", department="social_security", due_at=now, status="assigned",
                          created_at=now, updated_at=now, language="zh", priority="normal")
        session.add(order)
        await session.flush()
        session.add(WorkOrderStep(work_order_id=order.id, actor="desk", actor_role="dispatcher", action="dispatch",
                                  from_department="dispatch", to_department="social_security", created_at=now))
    classifier = DispatchClassifier(ToyKnowledge([]), database, tmp_path / "none.jsonl")  # type: ignore[arg-type]
    await classifier.wait_loaded()
    assert await classifier("工资又没发") == [("social_security", 1.0)]
