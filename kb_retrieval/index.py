"""The knowledge base index callers hold: articles in, passages embedded, edits applied, and the search entry point.

Concurrency model: all searchable data lives in one immutable `IndexState` (index_state.py). Writers (upsert/remove)
build a new state aside under a writer lock, reusing every array they can, and swap one reference; searches read
the reference once and never lock. Only the changed article's passages are embedded on an upsert.

A search prepares the query here (normalised text, language, BM25 tokens, vectors from both models), ranks the
articles (ranking.py) and asks the calibration whether the best one answers it (answerable.py). Saving and loading
are in persistence.py, building a ready index from settings in factory.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog

from kb_retrieval.answerable import Calibration
from kb_retrieval.articles import Article
from kb_retrieval.config import KBConfig
from kb_retrieval.embedding import Embedder
from kb_retrieval.index_state import IndexState, build_state, with_article
from kb_retrieval.passages import Passage, article_passages
from kb_retrieval.persistence import article_hash, load_state, params_fingerprint, save_state
from kb_retrieval.ranking import EncodedQuery, Ranking, rank_articles
from kb_retrieval.signals import RankingSignals
from kb_retrieval.text import Tokenizer, detect_language, normalize

# Passage too: bench/bench_kb.py builds its synthetic 100,000-article index from this module's names.
__all__ = ["Hit", "KnowledgeBase", "Passage", "SearchResult"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Hit:
    article: Article
    score: float
    dense_score: float | None
    bm25_score: float | None
    passage: str  # the best-matching passage, useful for an answer snippet


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    answerable: bool
    took_ms: float
    lang: str
    confidence: float | None = None  # the calibrated probability that the best hit answers the query
    signals: RankingSignals | None = None  # what the decision saw, for callers that combine it (e.g. with the NLU)


class KnowledgeBase:
    """Hybrid search over KB articles. Build with `build_knowledge_base` (or `KnowledgeBase(...).rebuild(...)`)."""

    def __init__(
        self,
        config: KBConfig,
        embedder: Embedder,
        calibration: Calibration | None = None,
        tokenizer: Tokenizer | None = None,
        english_embedder: Embedder | None = None,
    ) -> None:
        self.config = config
        self.embedder = embedder
        self.english_embedder = english_embedder
        self._english_encoder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kb-english-query")
        self.calibration = calibration
        # Why injectable: loading jieba's dictionary takes ~1 s; tests and multi-KB processes share one.
        self.tokenizer = tokenizer or Tokenizer(config.user_words)
        self._write_lock = threading.Lock()
        self._state: IndexState = self._make_state({}, [], [], np.zeros((0, embedder.dim), np.float32), [])

    # ---------- building ----------

    @property
    def _english_dim(self) -> int | None:
        return self.english_embedder.dim if self.english_embedder is not None else None

    def _params_fingerprint(self) -> str:
        english = self.english_embedder.fingerprint if self.english_embedder is not None else None
        return params_fingerprint(self.config, self.embedder.fingerprint, english)

    def fingerprint(self) -> str:
        """Identifies articles + model + indexing parameters; a saved index with another fingerprint is stale."""
        return f"{self._params_fingerprint()}-{article_hash(self._state.articles.values())}"

    def _make_state(
        self, articles: dict[str, Article], passages: Sequence[Passage], tokens: Sequence[Sequence[str]],
        embeddings: np.ndarray, alive: Sequence[bool] | np.ndarray, en_vectors: np.ndarray | None = None,
    ) -> IndexState:
        """A fresh state over these rows with this index's models and settings (`index_state.build_state`; the
        benchmark builds its synthetic index through this too)."""
        return build_state(self.config, self.embedder.dim, self._english_dim, articles, passages, tokens, embeddings,
                           alive, en_vectors=en_vectors)

    def _embed(
        self, texts: list[str], cache: dict[str, np.ndarray] | None = None, embedder: Embedder | None = None
    ) -> np.ndarray:
        embedder = embedder or self.embedder
        out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
        todo = [i for i, t in enumerate(texts) if cache is None or t not in cache]
        if cache is not None:
            for i, t in enumerate(texts):
                if t in cache:
                    out[i] = cache[t]
        if todo:
            out[todo] = embedder.encode([texts[i] for i in todo])
        return out

    def _prepare(
        self,
        passages: Sequence[Passage],
        cache: dict[str, np.ndarray] | None = None,
        english_cache: dict[str, np.ndarray] | None = None,
    ) -> tuple[list[list[str]], np.ndarray, np.ndarray | None]:
        """What the state needs of new passages: their BM25 tokens, their vectors and, with an English model, the
        English passages' vectors of that model (vectors found in the caches are not computed again)."""
        tokens = [self.tokenizer.tokenize(p.text) for p in passages]
        emb = self._embed([p.text for p in passages], cache)
        english = None
        if self.english_embedder is not None:
            english = self._embed([p.text for p in passages if p.lang == "en"], english_cache, self.english_embedder)
        return tokens, emb, english

    def rebuild(
        self,
        articles: Iterable[Article],
        vector_cache: dict[str, np.ndarray] | None = None,
        english_cache: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Index these articles from scratch (reusing cached passage vectors by text when given)."""
        t0 = time.perf_counter()
        arts = {a.id: a for a in articles}
        passages = [p for a in arts.values() if a.published for p in article_passages(a, self.config)]
        tokens, emb, en = self._prepare(passages, vector_cache, english_cache)
        state = self._make_state(arts, passages, tokens, emb, [True] * len(passages), en_vectors=en)
        with self._write_lock:
            self._state = state
        ms = round(1000 * (time.perf_counter() - t0))
        log.info("kb.index_built", articles=len(arts), passages=len(passages), ms=ms)

    # ---------- editing ----------

    def upsert(self, article: Article) -> None:
        """Add or replace one article (unpublished = not searchable); visible to searches when this returns."""
        passages = article_passages(article, self.config) if article.published else []
        tokens, emb, en = self._prepare(passages)
        with self._write_lock:
            self._state = self._with_article(article.id, article, passages, tokens, emb, en)

    def remove(self, article_id: str) -> bool:
        """Remove an article; returns False if it was not there."""
        tokens, emb, en = self._prepare([])
        with self._write_lock:
            if article_id not in self._state.articles:
                return False
            self._state = self._with_article(article_id, None, [], tokens, emb, en)
            return True

    def _with_article(
        self, article_id: str, article: Article | None, passages: list[Passage], tokens: list[list[str]],
        emb: np.ndarray, en: np.ndarray | None,
    ) -> IndexState:
        return with_article(self._state, self.config, self.embedder.dim, self._english_dim, article_id, article,
                            passages, tokens, emb, en)

    # ---------- reading ----------

    def articles(self) -> list[Article]:
        return list(self._state.articles.values())

    def get(self, article_id: str) -> Article | None:
        return self._state.articles.get(article_id)

    def encode_query(self, normalized_query: str, embedder: Embedder | None = None) -> np.ndarray:
        """The query's vector: the embedder's query path (cache, int8 model) when it has one."""
        embedder = embedder or self.embedder
        encode_query = getattr(embedder, "encode_query", None)
        if encode_query is not None:
            return np.asarray(encode_query(normalized_query), dtype=np.float32)
        return embedder.encode([normalized_query])[0]

    def rank(
        self,
        query: str,
        method: str = "hybrid",
        lang: str | None = None,
        department: str | None = None,
        exclude_passage: tuple[str, str] | None = None,
        query_vector: np.ndarray | None = None,
    ) -> Ranking:
        """Rank all candidate articles for a query. exclude_passage=(article_id, text) hides one passage
        (calibration uses it to score a sample question without its own copy in the index)."""
        st = self._state
        qn = normalize(query)
        q_lang = lang or detect_language(qn)
        english_vector: Future[np.ndarray] | None = None
        if (q_lang == "en" and method != "bm25" and self.english_embedder is not None
                and st.en_vectors is not None and self.config.english_weight > 0):
            # Why another thread: both encoders release the GIL, so with a core free the two encodings overlap
            # (measured on the dev set's English queries: p50 12.2 → 7.4 ms, p99 16.0 → 10.2 ms).
            english_vector = self._english_encoder.submit(self.encode_query, qn, self.english_embedder)
        encoded = EncodedQuery(
            normalized=qn,
            lang=q_lang,
            tokens=self.tokenizer.tokenize(qn),
            vector=query_vector if query_vector is not None else self.encode_query(qn),
            english_vector=english_vector,
        )
        return rank_articles(st, self.config, encoded, method, lang, department, exclude_passage)

    def search(
        self, query: str, k: int = 5, lang: str | None = None, department: str | None = None
    ) -> SearchResult:
        """Best articles for a query and whether the best is good enough to answer with.

        lang: the query's language when the caller knows it (else detected); it also restricts results to articles
        that have text in that language. department: only articles of that department.
        """
        t0 = time.perf_counter()
        st = self._state
        if not query.strip() or not st.articles:
            return SearchResult([], False, (time.perf_counter() - t0) * 1000, lang or "zh")
        r = self.rank(query, "hybrid", lang=lang, department=department)
        hits = [
            Hit(
                article=st.articles[aid],
                score=r.scores[i],
                dense_score=r.dense.get(aid),
                bm25_score=r.bm25.get(aid),
                passage=r.best_passage.get(aid, ""),
            )
            for i, aid in enumerate(r.article_ids[:k])
            if aid in st.articles
        ]
        confidence = self.calibration.probability(r.signals) if self.calibration else None
        answerable = bool(hits) and (confidence is None or confidence >= self.calibration.threshold)  # type: ignore[union-attr]
        return SearchResult(hits, answerable, (time.perf_counter() - t0) * 1000, r.lang, confidence, r.signals)

    # ---------- persistence ----------

    def save(self, directory: Path) -> None:
        """Write the index (articles, passages, vectors, FAISS base index, fingerprint) to a directory."""
        english = self.english_embedder.fingerprint if self.english_embedder is not None else None
        save_state(self._state, directory, self._params_fingerprint(), self.embedder.fingerprint, english)

    def load(self, directory: Path, expected: Iterable[Article] | None = None) -> None:
        """Load a saved index. Raises StaleIndexError if the model/parameters (or, when `expected` articles are
        given, the articles) differ from what was saved, FileNotFoundError if there is none."""
        state = load_state(directory, self.config, self.embedder.dim, self._english_dim, self._params_fingerprint(),
                           expected)
        with self._write_lock:
            self._state = state

    def vector_cache(self) -> dict[str, np.ndarray]:
        """Passage text → vector, to rebuild after edits without re-embedding unchanged passages."""
        return self._state.vectors_by_text()

    def english_vector_cache(self) -> dict[str, np.ndarray]:
        """English passage text → the English model's vector (empty without an English model)."""
        return self._state.vectors_by_text(english=True)
