"""The knowledge base inside the gateway: loading it from settings, the public search API, and the bridge that lets
Rasa's custom actions search it."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from rasa_sdk.executor import ActionExecutor

from bot.actions import build_executor
from bot.actions.ports import ArticleHit, KbAnswer
from gateway.services import Services, services_of

if TYPE_CHECKING:
    from gateway.settings import Settings

log = structlog.get_logger(__name__)
SEARCHES_PER_MINUTE = 120


class Knowledge:
    """The loaded knowledge base; searches run in a thread so the event loop never waits on the model."""

    def __init__(self, kb: Any, metrics: Any) -> None:
        self.kb = kb
        self.metrics = metrics
        self.ready = True

    async def search(self, query: str, k: int = 5, lang: str | None = None, department: str | None = None) -> Any:
        started = time.perf_counter()
        result = await asyncio.to_thread(self.kb.search, query, k=k, lang=lang, department=department)
        self.metrics.kb_search_seconds.observe(time.perf_counter() - started)
        return result


class ActionSearch:
    """The `ArticleSearch` port of the bot's actions, served by the gateway's knowledge base."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge

    async def search(self, query: str, k: int, lang: str | None) -> KbAnswer:
        result = await self.knowledge.search(query, k=k, lang=lang)
        hits = [
            ArticleHit(
                id=h.article.id, title_zh=h.article.title_zh, title_en=h.article.title_en,
                body_zh=h.article.body_zh, body_en=h.article.body_en, department=h.article.department,
                score=float(h.score),
            )
            for h in result.hits
        ]
        return KbAnswer(hits=hits, answerable=bool(result.answerable))


async def load_knowledge(settings: Settings, services: Services) -> Knowledge:
    from kb_retrieval import build_knowledge_base

    started = time.perf_counter()
    kb = await asyncio.to_thread(build_knowledge_base, settings.kb_path, settings.data_dir / "kb_index",
                                 settings.kb_embedding_model or None)
    log.info("kb.loaded", articles=len(kb.articles()), seconds=round(time.perf_counter() - started, 2),
             path=str(settings.kb_path))
    return Knowledge(kb, services.metrics)


def build_actions(services: Services) -> ActionExecutor:
    return build_executor(ActionSearch(services.knowledge))


# ---- the public search API -----------------------------------------------------------------------------------------


class SearchHit(BaseModel):
    id: str = Field(description="The article id as in the KB file, e.g. kb-transport-001")
    title: str
    score: float
    department: str


class SearchResponse(BaseModel):
    results: list[SearchHit]
    answerable: bool = Field(description="False when no article is good enough to answer with")
    took_ms: float


router = APIRouter(tags=["knowledge base"])


@router.get(
    "/api/kb/search",
    response_model=SearchResponse,
    summary="Search the knowledge base (public, read-only, rate-limited)",
    responses={429: {"description": "Too many searches"}, 503: {"description": "The index is still loading"}},
)
async def search(
    request: Request,
    q: str = Query(min_length=1, max_length=500, description="What the citizen asked"),
    k: int = Query(5, ge=1, le=50),
    lang: str | None = Query(None, pattern="^(zh|en)$", description="Answer language; default: the query's"),
    department: str | None = Query(None, max_length=64),
    services: Services = Depends(services_of),
) -> SearchResponse:
    if not q.strip():
        raise HTTPException(status_code=422, detail="q is blank")
    client = request.client.host if request.client else "unknown"
    if not await services.coordination.allow(f"kb-search:{client}", SEARCHES_PER_MINUTE, 60):
        raise HTTPException(status_code=429, detail="too many searches")
    knowledge = services.knowledge
    if knowledge is None:
        raise HTTPException(status_code=503, detail="the knowledge base is loading")
    language = lang or services.language.detect(q)
    started = time.perf_counter()
    result = await knowledge.search(q, k=k, lang=lang, department=department)
    return SearchResponse(
        results=[
            SearchHit(id=h.article.id, title=h.article.title(language), score=round(float(h.score), 4),
                      department=h.article.department)
            for h in result.hits
        ],
        answerable=bool(result.answerable),
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )
