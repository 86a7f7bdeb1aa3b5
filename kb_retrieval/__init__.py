"""Knowledge-base retrieval for the citizen-service bot: bilingual hybrid (dense + BM25) article search with a
calibrated "no good answer" decision, incremental updates and a persisted index.

Public face: `Article`, `load_articles`, `normalize`, `detect_language`, `KBConfig`, `build_knowledge_base`,
`KnowledgeBase` (search / upsert / remove / articles / get / save / load), `SearchResult`, `Hit`.
"""

from kb_retrieval.articles import Article, ArticleLoadError, load_articles
from kb_retrieval.config import KBConfig
from kb_retrieval.factory import build_knowledge_base
from kb_retrieval.index import Hit, KnowledgeBase, SearchResult
from kb_retrieval.persistence import StaleIndexError
from kb_retrieval.text import detect_language, normalize

__all__ = [
    "Article",
    "ArticleLoadError",
    "Hit",
    "KBConfig",
    "KnowledgeBase",
    "SearchResult",
    "StaleIndexError",
    "build_knowledge_base",
    "detect_language",
    "load_articles",
    "normalize",
]
