"""HTTP API of the knowledge base: public search, and article editing for staff (with versions)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Protocol

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from gateway.api_types import RowId
from gateway.auth import require_admin
from gateway.coordination import Coordination
from gateway.language import LanguageTagger
from kb_retrieval.articles import Article
from kb_retrieval.service import KnowledgeService
from kb_retrieval.store import ArticleNotFound

SEARCHES_PER_MINUTE = 120
ARTICLE_ID = re.compile(r"^kb-[a-z_]+-\d{3,}$")

router = APIRouter(tags=["knowledge base"])


class CoreServices(Protocol):
    """What the search reads of the app's services (the core's, gateway/services.py), declared by shape so that
    this package does not depend on how the app assembles them."""

    coordination: Coordination
    language: LanguageTagger


def core_of(request: Request) -> CoreServices:
    return request.app.state.services  # type: ignore[no-any-return]


def knowledge_of(request: Request) -> KnowledgeService:
    """The app's knowledge service once its index is ready; 503 while it loads (or when the app has none)."""
    knowledge: KnowledgeService | None = getattr(request.app.state.services, "knowledge", None)
    if knowledge is None or not knowledge.ready:
        raise HTTPException(status_code=503, detail="the knowledge base is loading; try again shortly",
                            headers={"Retry-After": "5"})
    return knowledge


@contextmanager
def _or_404(detail: str) -> Iterator[None]:
    """An ArticleNotFound inside becomes a 404 with this detail."""
    try:
        yield
    except ArticleNotFound:
        raise HTTPException(status_code=404, detail=detail) from None


# ---- search -------------------------------------------------------------------------------------------------------


class SearchHit(BaseModel):
    id: str = Field(description="The article id as in the KB file, e.g. kb-transport-001")
    title: str = Field(description="The title in the query's (or the requested) language")
    score: float
    department: str


class SearchResponse(BaseModel):
    results: list[SearchHit] = Field(description="Best first")
    answerable: bool = Field(description="False when no article is good enough to answer with (calibrated)")
    confidence: float | None = Field(
        None, description="The calibrated probability that the best result answers the query (answerable is "
        "confidence ≥ the calibrated threshold); null without a calibration. For combining with other signals."
    )
    took_ms: float


@router.get(
    "/api/kb/search",
    response_model=SearchResponse,
    summary="Search the knowledge base (public, read-only, rate-limited per client)",
    responses={429: {"description": "Too many searches"}, 503: {"description": "The index is still loading"}},
)
async def search(
    request: Request,
    q: str = Query(min_length=1, max_length=500, description="What the citizen asked, in Chinese or English"),
    k: int = Query(5, ge=1, le=50, description="How many articles"),
    lang: str | None = Query(None, pattern="^(zh|en)$", description="Title language; default: the query's"),
    department: str | None = Query(None, max_length=64, description="Only articles of this department"),
    services: CoreServices = Depends(core_of),
    knowledge: KnowledgeService = Depends(knowledge_of),
) -> SearchResponse:
    if not q.strip():
        raise HTTPException(status_code=422, detail="q is blank")
    client = request.client.host if request.client else "unknown"
    if not await services.coordination.allow(f"kb-search:{client}", SEARCHES_PER_MINUTE, 60):
        raise HTTPException(status_code=429, detail="too many searches; try again in a minute")
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
        confidence=None if result.confidence is None else round(float(result.confidence), 4),
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )


# ---- editing ------------------------------------------------------------------------------------------------------


class ArticleIn(BaseModel):
    department: str = Field(min_length=1, max_length=64, pattern="^[a-z_]+$")
    title_zh: str = Field(default="", max_length=200)
    title_en: str = Field(default="", max_length=300)
    body_zh: str = Field(default="", max_length=20000)
    body_en: str = Field(default="", max_length=40000)
    tags: list[str] = Field(default_factory=list, max_length=30)
    questions: list[str] = Field(default_factory=list, max_length=100)
    published: bool = True
    note: str | None = Field(default=None, max_length=500, description="Why this change (kept with the version)")

    def to_article(self, article_id: str) -> Article:
        if not (self.title_zh.strip() or self.title_en.strip()):
            raise HTTPException(status_code=422, detail="an article needs a title in at least one language")
        if not (self.body_zh.strip() or self.body_en.strip()):
            raise HTTPException(status_code=422, detail="an article needs a body in at least one language")
        return Article(
            id=article_id, department=self.department, title_zh=self.title_zh, title_en=self.title_en,
            body_zh=self.body_zh, body_en=self.body_en, tags=tuple(self.tags), questions=tuple(self.questions),
            published=self.published,
        )


class ArticleCreate(ArticleIn):
    id: str = Field(description="kb-<department>-NNN", max_length=64)


class ArticleOut(BaseModel):
    id: str
    department: str
    title_zh: str
    title_en: str
    body_zh: str
    body_en: str
    tags: list[str]
    questions: list[str]
    published: bool
    version: int
    updated_at: datetime | None = None


class VersionOut(BaseModel):
    version: int
    created_at: datetime
    author: str | None
    note: str | None
    snapshot: dict[str, object]


def _out(article: Article, version: int, updated_at: datetime | None = None) -> ArticleOut:
    data = article.to_dict()
    return ArticleOut(**data, version=version, updated_at=updated_at)


@router.get("/api/kb/articles", response_model=list[ArticleOut], summary="List articles (staff)")
async def list_articles(
    department: str | None = Query(None, max_length=64),
    published: bool | None = Query(None),
    q: str | None = Query(None, max_length=200, description="Substring of a title"),
    _caller: str = Depends(require_admin),
    knowledge: KnowledgeService = Depends(knowledge_of),
) -> list[ArticleOut]:
    rows = []
    for article, version, updated_at in await knowledge.store.listing():
        if department and article.department != department:
            continue
        if published is not None and article.published != published:
            continue
        if q and q.lower() not in (article.title_zh + " " + article.title_en).lower():
            continue
        rows.append(_out(article, version, updated_at))
    return rows


async def _read(knowledge: KnowledgeService, article_id: str) -> ArticleOut:
    with _or_404(f"no article {article_id}"):
        article, version, updated_at = await knowledge.store.get(article_id)
    return _out(article, version, updated_at)


@router.get("/api/kb/articles/{article_id}", response_model=ArticleOut, summary="Read an article (staff)")
async def read_article(
    article_id: str, _caller: str = Depends(require_admin), knowledge: KnowledgeService = Depends(knowledge_of)
) -> ArticleOut:
    return await _read(knowledge, article_id)


@router.post("/api/kb/articles", response_model=ArticleOut, status_code=201,
             summary="Create an article (staff); searchable within a second")
async def create_article(
    body: ArticleCreate, caller: str = Depends(require_admin), knowledge: KnowledgeService = Depends(knowledge_of)
) -> ArticleOut:
    if not ARTICLE_ID.match(body.id):
        raise HTTPException(status_code=422, detail="id must look like kb-<department>-NNN")
    try:
        await knowledge.save(body.to_article(body.id), caller, body.note, create=True)
    except FileExistsError:
        raise HTTPException(status_code=409, detail=f"article {body.id} exists; use PUT to change it") from None
    return await _read(knowledge, body.id)


@router.put("/api/kb/articles/{article_id}", response_model=ArticleOut,
            summary="Replace an article (staff); a new version, searchable within a second")
async def update_article(
    article_id: str, body: ArticleIn, caller: str = Depends(require_admin),
    knowledge: KnowledgeService = Depends(knowledge_of),
) -> ArticleOut:
    with _or_404(f"no article {article_id}"):
        await knowledge.save(body.to_article(article_id), caller, body.note)
    return await _read(knowledge, article_id)


@router.delete("/api/kb/articles/{article_id}", status_code=204,
               summary="Unpublish an article (staff); gone from search within a second, versions kept")
async def unpublish_article(
    article_id: str, caller: str = Depends(require_admin), knowledge: KnowledgeService = Depends(knowledge_of)
) -> Response:
    with _or_404(f"no article {article_id}"):
        await knowledge.set_published(article_id, False, caller)
    return Response(status_code=204)


@router.get("/api/kb/articles/{article_id}/versions", response_model=list[VersionOut],
            summary="An article's versions, newest first (staff)")
async def article_versions(
    article_id: str, _caller: str = Depends(require_admin), knowledge: KnowledgeService = Depends(knowledge_of)
) -> list[VersionOut]:
    with _or_404(f"no article {article_id}"):
        rows = await knowledge.store.versions(article_id)
    return [VersionOut(version=r.version, created_at=r.created_at, author=r.author, note=r.note,
                       snapshot=r.snapshot) for r in rows]


@router.post("/api/kb/articles/{article_id}/versions/{version}/restore", response_model=ArticleOut,
             summary="Restore an earlier version as a new version (staff)")
async def restore_version(
    article_id: str, version: RowId, caller: str = Depends(require_admin),
    knowledge: KnowledgeService = Depends(knowledge_of),
) -> ArticleOut:
    with _or_404(f"no version {version} of {article_id}"):
        await knowledge.restore(article_id, version, caller)
    return await _read(knowledge, article_id)
