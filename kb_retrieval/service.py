"""The knowledge base as the gateway runs it: the article store (database) and the search index kept in step.

Edits go to the store first, then into the index (only the changed article is re-embedded; searches go on
meanwhile), and are announced on the coordination bus so other gateway workers update their own index.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from gateway.coordination import Coordination
from gateway.storage import Database
from kb_retrieval.articles import Article, load_articles
from kb_retrieval.config import KBConfig
from kb_retrieval.factory import build_knowledge_base
from kb_retrieval.finetune import DEFAULT_ROOT as FINETUNED_ROOT
from kb_retrieval.finetune import find_finetuned
from kb_retrieval.index import KnowledgeBase, SearchResult
from kb_retrieval.store import ArticleStore

log = structlog.get_logger(__name__)
CHANGES_TOPIC = "kb:changes"


@dataclass(frozen=True)
class KnowledgeSettings:
    kb_path: Path
    index_dir: Path
    embedding_model: str | None = None
    english_embedding_model: str = "auto"


def resolve_kb_model(setting: str | None, kb_path: Path, root: Path = FINETUNED_ROOT) -> str | None:
    """KB_EMBEDDING_MODEL when set; else the model `make train` fine-tuned for this KB file, when it was built;
    else None (the bundled m3e-small). The fine-tuned model is found by a fingerprint of the KB file's questions,
    so pointing KB_PATH at another file picks that file's model (or the base one until `make train` ran)."""
    if setting:
        return setting
    found = find_finetuned(kb_path, root)
    log.info("kb.embedding_model", finetuned=str(found) if found else None, kb_path=str(kb_path))
    return str(found) if found else None


class KnowledgeLoading(Exception):
    """The index is still being built (the gateway answers meanwhile; searches wait or report this)."""


class KnowledgeService:
    """Created at once; `load()` imports the KB file and builds (or reloads) the index in the background."""

    def __init__(self, settings: KnowledgeSettings, db: Database, coordination: Coordination,
                 observe_search: Any = None) -> None:
        self.settings = settings
        self.store = ArticleStore(db)
        self.coordination = coordination
        self.observe_search = observe_search  # a Prometheus histogram's observe, or None
        self._index: KnowledgeBase | None = None
        self._loaded = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self._index is not None

    @property
    def index(self) -> KnowledgeBase:
        if self._index is None:
            raise KnowledgeLoading("the knowledge base is loading")
        return self._index

    async def wait_ready(self, timeout_seconds: float) -> KnowledgeBase:
        if self._index is not None:
            return self._index
        try:
            await asyncio.wait_for(self._loaded.wait(), timeout_seconds)
        except TimeoutError:
            raise KnowledgeLoading("the knowledge base is loading") from None
        return self.index

    async def load(self) -> None:
        started = time.perf_counter()
        settings = self.settings
        if settings.kb_path.exists():
            report = await self.store.import_file_articles(await asyncio.to_thread(load_articles, settings.kb_path))
            log.info("kb.imported", path=str(settings.kb_path), **report.__dict__)
        else:
            log.warning("kb.file_missing", path=str(settings.kb_path))
        articles = [a for a in await self.store.all() if a.published]
        log.info("kb.indexing", articles=len(articles))
        config = KBConfig(model=resolve_kb_model(settings.embedding_model, settings.kb_path),
                          english_model=settings.english_embedding_model, index_dir=settings.index_dir)
        self._index = await asyncio.to_thread(build_knowledge_base, config, articles)
        self._loaded.set()
        log.info("kb.ready", articles=len(articles), seconds=round(time.perf_counter() - started, 2))

    # ---- search --------------------------------------------------------------------------------------------------

    async def search(self, query: str, k: int = 5, lang: str | None = None, department: str | None = None,
                     wait_seconds: float = 0.0) -> SearchResult:
        index = await self.wait_ready(wait_seconds)
        started = time.perf_counter()
        result = await asyncio.to_thread(index.search, query, k=k, lang=lang, department=department)
        if self.observe_search is not None:
            self.observe_search(time.perf_counter() - started)
        return result

    # ---- edits ---------------------------------------------------------------------------------------------------

    async def save(self, article: Article, author: str, note: str | None = None, create: bool = False) -> int:
        version = await self.store.save(article, author, note, create=create)
        await self._follow(article.id)
        return version

    async def set_published(self, article_id: str, published: bool, author: str) -> int:
        version = await self.store.set_published(article_id, published, author)
        await self._follow(article_id)
        return version

    async def restore(self, article_id: str, version: int, author: str) -> int:
        _, new_version = await self.store.restore(article_id, version, author)
        await self._follow(article_id)
        return new_version

    async def _follow(self, article_id: str) -> None:
        await self._apply(article_id)
        await self.coordination.publish(CHANGES_TOPIC, {"article_id": article_id})

    async def _apply(self, article_id: str) -> None:
        if not self.ready:
            return  # the index being built reads the store after this change
        article, _, _ = await self.store.get(article_id)
        if article.published:
            await asyncio.to_thread(self.index.upsert, article)
        else:
            await asyncio.to_thread(self.index.remove, article_id)

    async def follow_other_workers(self) -> None:
        """Forever: apply edits made through other gateway workers to this worker's index."""
        async with self.coordination.subscribe(CHANGES_TOPIC) as changes:
            while True:
                change = await changes.get(timeout=60)
                if change and change.get("article_id"):
                    with suppress(LookupError):
                        await self._apply(str(change["article_id"]))
