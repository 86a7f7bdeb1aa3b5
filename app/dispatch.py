"""What a report is about, by department: the routing evidence the work-order service asks for (crm_adapter's
`DepartmentClassifier`), built from what the city has.

Two voices, each a share per department, averaged:
- the knowledge base: its nearest articles (their sample questions are citizens' own words about each
  department's matters) vote with their scores;
- written reports: the nearest of `crm_adapter/dispatch_examples.jsonl` (citizens' reports per department, the way
  they really write: long stories that never name the department, places that name other departments' things)
  and of the orders a dispatcher re-routed (a dispatcher's correction is the best label there is), by cosine on
  the knowledge base's own sentence model. The examples are embedded once per model and set of examples, in the
  background, and re-read when re-routed orders grow.
Swept on the development set (bench/data/heldout/, 120 reports, base m3e-small, the routing threshold of 0.3):
the knowledge base alone put 79 in the right department, the 780 written reports alone 96, the two at 0.5 / 0.5
97, at 0.3 / 0.7 99; the keyword rules 49. The untouched set is measured in bench/bench_understanding.py.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog
from sqlalchemy import select

from crm_adapter.models import WorkOrder, WorkOrderStep
from gateway.settings import PROJECT_ROOT
from gateway.storage import Database
from kb_retrieval.service import KnowledgeLoading, KnowledgeService

log = structlog.get_logger(__name__)

EXAMPLES = PROJECT_ROOT / "crm_adapter" / "dispatch_examples.jsonl"
CORRECTING_ROLES = ("dispatcher", "supervisor")
REFRESH_SECONDS = 600.0  # re-routed orders are read again at most this often


@dataclass
class _Examples:
    labels: list[str]
    vectors: np.ndarray
    fingerprint: str
    loaded_at: float


def _shares(votes: dict[str, float]) -> dict[str, float]:
    total = sum(v for v in votes.values() if v > 0)
    return {d: v / total for d, v in votes.items() if v > 0} if total > 0 else {}


@dataclass
class DispatchClassifier:
    knowledge: KnowledgeService
    db: Database
    examples_path: Path = EXAMPLES
    kb_hits: int = 10
    neighbours: int = 7
    example_weight: float = 0.7  # the written reports' share of the verdict, the knowledge base's the rest
    _examples: _Examples | None = None
    _loader: asyncio.Task[None] | None = None

    async def __call__(self, text: str) -> list[tuple[str, float]]:
        try:
            result = await self.knowledge.search(text, k=self.kb_hits, wait_seconds=5.0)
        except KnowledgeLoading:
            return []
        kb: dict[str, float] = {}
        for hit in result.hits:
            kb[hit.article.department] = kb.get(hit.article.department, 0.0) + max(float(hit.score), 0.0)
        kb = _shares(kb)
        near = await self._nearest(text)
        weight = self.example_weight if near else 0.0
        if not kb:
            weight = 1.0 if near else 0.0
        combined = {d: (1 - weight) * kb.get(d, 0.0) + weight * near.get(d, 0.0) for d in {*kb, *near}}
        return sorted(((d, round(v, 4)) for d, v in combined.items() if v > 0), key=lambda dv: -dv[1])

    async def _nearest(self, text: str) -> dict[str, float]:
        examples = self._ready_examples()
        if examples is None or not examples.labels:
            return {}
        index = self.knowledge.index
        # Encoded as written, not normalised as the knowledge base's search does (so its query cache misses):
        # lower-casing and Traditional→Simplified cost 3 of 99 right on the development set.
        query = await asyncio.to_thread(index.encode_query, text)
        scores = examples.vectors @ np.asarray(query, dtype=np.float32)
        top = np.argsort(-scores)[: self.neighbours]
        votes: dict[str, float] = {}
        for i in top:
            votes[examples.labels[int(i)]] = votes.get(examples.labels[int(i)], 0.0) + max(float(scores[i]), 0.0)
        return _shares(votes)

    def _ready_examples(self) -> _Examples | None:
        """The examples' vectors as they are now; embedding (again, when stale) runs in the background, so filing
        an order never waits for it (the knowledge base's vote alone decides until it is done)."""
        loop = asyncio.get_running_loop()
        current = self._examples
        stale = current is None or loop.time() - current.loaded_at >= REFRESH_SECONDS
        if stale and (self._loader is None or self._loader.done()):
            self._loader = loop.create_task(self._load(), name="dispatch-examples")
        return current

    async def wait_loaded(self) -> None:
        """Until the examples are embedded (tests, benchmarks)."""
        self._ready_examples()
        if self._loader is not None:
            await asyncio.shield(self._loader)

    async def _load(self) -> None:
        """The examples' vectors, embedded by the knowledge base's model (again when the model or the set changes)."""
        loop = asyncio.get_running_loop()
        try:
            texts, labels = self._written()
            corrected = await self._re_routed()
            texts += [t for t, _ in corrected]
            labels += [d for _, d in corrected]
            embedder = self.knowledge.index.embedder
            fingerprint = f"{embedder.fingerprint}:{len(texts)}:{hash(tuple(texts))}"
            current = self._examples
            if current is not None and current.fingerprint == fingerprint:
                current.loaded_at = loop.time()
                return
            vectors = await asyncio.to_thread(embedder.encode, texts) if texts else np.zeros((0, embedder.dim))
            self._examples = _Examples(labels, np.asarray(vectors, dtype=np.float32), fingerprint, loop.time())
            log.info("dispatch.examples_loaded", written=len(texts) - len(corrected), re_routed=len(corrected))
        except KnowledgeLoading:
            return  # the knowledge base is still loading: tried again on the next report
        except Exception as exc:  # noqa: BLE001 - routing goes on with the knowledge base's vote
            log.warning("dispatch.examples_failed", error=repr(exc))

    def _written(self) -> tuple[list[str], list[str]]:
        texts: list[str] = []
        labels: list[str] = []
        if not self.examples_path.exists():
            return texts, labels
        for line in self.examples_path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row.get("text"), str) and isinstance(row.get("department"), str):
                texts.append(row["text"])
                labels.append(row["department"])
        return texts, labels

    async def _re_routed(self) -> list[tuple[str, str]]:
        """Orders a dispatcher or supervisor moved to another department: their story, where they belong now."""
        async with self.db.sessions() as session:
            rows = (await session.execute(
                select(WorkOrder.description, WorkOrder.department)
                .where(WorkOrder.id.in_(
                    select(WorkOrderStep.work_order_id).where(
                        WorkOrderStep.actor_role.in_(CORRECTING_ROLES),
                        WorkOrderStep.to_department.is_not(None),
                        WorkOrderStep.from_department.is_not(None),
                        WorkOrderStep.to_department != WorkOrderStep.from_department,
                    )
                ), WorkOrder.department != "dispatch")
                .order_by(WorkOrder.id.desc()).limit(5000)
            )).all()
        return [(str(text), str(department)) for text, department in rows if text]
