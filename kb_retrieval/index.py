"""The knowledge base index: passages of articles, dense (FAISS) and lexical (BM25) search, hybrid ranking.

Concurrency model: all searchable data lives in one immutable `_State`. Writers (upsert/remove) build a new state
aside under a writer lock, reusing every array they can, and swap one reference; searches read the reference once
and never lock. Only the changed article's passages are embedded on an upsert.

Dense index: rows [0, n_base) sit in a base FAISS index (exact IndexFlatIP up to `flat_max_passages`, HNSW above);
rows appended by upserts sit in a small exact delta index; replaced or removed rows are masked as dead. When the
delta grows past a tenth of the base, the base is rebuilt from the live rows (compaction).

English queries: the main model (m3e-small) is trained mostly on Chinese. When an English model is configured
(all-MiniLM-L6-v2 by default), the English passages also get its vectors, and an English query's candidate articles
(found by the main model and BM25) are re-scored with a mix of both models' similarities (`english_weight`).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bm25s
import faiss
import numpy as np
import structlog

from kb_retrieval.answerable import Calibration, RankingSignals
from kb_retrieval.answerable import load_all as load_calibrations
from kb_retrieval.answerable import pick as pick_calibration
from kb_retrieval.articles import Article
from kb_retrieval.config import KBConfig
from kb_retrieval.embedding import Embedder
from kb_retrieval.fusion import mix_scores, reciprocal_rank_fusion, weighted_sum
from kb_retrieval.text import TOKENIZER_VERSION, Tokenizer, chunk_body, detect_language, normalize

log = structlog.get_logger(__name__)

FORMAT_VERSION = 1
_LATIN_WORD = re.compile(r"[a-z]{2,}")
METHODS = ("bm25", "dense", "hybrid")


class StaleIndexError(RuntimeError):
    """A saved index does not match the current articles, model or indexing parameters."""


@dataclass(frozen=True)
class Passage:
    article_id: str
    field: str  # title | body | tags | question
    lang: str
    text: str


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


@dataclass(frozen=True)
class Ranking:
    """The full ranking of one query by one method (used by search, evaluation and calibration)."""

    article_ids: list[str]
    scores: list[float]
    dense: dict[str, float]
    bm25: dict[str, float]
    best_passage: dict[str, str]
    signals: RankingSignals
    lang: str


@dataclass(frozen=True)
class _State:
    articles: dict[str, Article]
    passages: tuple[Passage, ...]
    tokens: tuple[tuple[str, ...], ...]
    row_article: np.ndarray  # int32, index into article_order
    article_order: tuple[str, ...]
    alive: np.ndarray  # bool per row
    embeddings: np.ndarray  # float32 (n, d), L2-normalised
    n_base: int
    base_index: Any
    delta_index: Any | None
    bm25: Any | None
    bm25_rows: np.ndarray  # BM25 doc → row
    passage_row: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (article_id, text) → rows
    article_tokens: dict[str, frozenset[str]] = field(default_factory=dict)  # live tokens of each article
    idf: dict[str, float] = field(default_factory=dict)  # log((N+1)/(df+0.5)) over live articles
    max_idf: float = 0.0  # what a word no article contains weighs
    masks: dict[tuple[str | None, str | None], np.ndarray] = field(default_factory=dict)  # filter cache
    en_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # rows of English passages
    en_vectors: np.ndarray | None = None  # the English model's vectors of those rows (None: no English model)

    def filter_mask(self, lang: str | None, department: str | None) -> np.ndarray:
        """Articles (in article_order) a lang/department filter allows; computed once per state and filter."""
        key = (lang, department)
        mask = self.masks.get(key)
        if mask is None:
            mask = np.array(
                [
                    (art := self.articles.get(aid)) is not None
                    and (department is None or art.department == department)
                    and (lang is None or art.has_language(lang))
                    for aid in self.article_order
                ],
                dtype=bool,
            )
            if len(self.masks) < 256:  # departments are few; a flood of made-up ones must not grow memory
                self.masks[key] = mask
        return mask

    @property
    def n_alive(self) -> int:
        return int(self.alive.sum())


def article_passages(article: Article, config: KBConfig) -> list[Passage]:
    """Passages of one article: titles, body chunks, tags and each sample question (all normalised)."""
    out: list[Passage] = []
    for lang in ("zh", "en"):
        title = article.title_zh if lang == "zh" else article.title_en
        if title.strip():
            out.append(Passage(article.id, "title", lang, normalize(title)))
    for lang in ("zh", "en"):
        body = article.body_zh if lang == "zh" else article.body_en
        for chunk in chunk_body(body, lang, config.zh_chunk_chars, config.en_chunk_words):
            out.append(Passage(article.id, "body", lang, normalize(chunk)))
    if article.tags:
        out.append(Passage(article.id, "tags", "zh", normalize(" ".join(article.tags))))
    for q in article.questions:
        if q.strip():
            out.append(Passage(article.id, "question", detect_language(q), normalize(q)))
    return out


def _article_hash(articles: Iterable[Article]) -> str:
    h = hashlib.sha256()
    for a in sorted(articles, key=lambda a: a.id):
        h.update(json.dumps(a.to_dict(), ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()[:24]


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
        self._state: _State = self._make_state({}, [], [], np.zeros((0, embedder.dim), np.float32), [])

    # ---------- building ----------

    def _params_fingerprint(self) -> str:
        c = self.config
        english = self.english_embedder.fingerprint if self.english_embedder is not None else "-"
        raw = (f"{FORMAT_VERSION}|{self.embedder.fingerprint}|{c.zh_chunk_chars}|{c.en_chunk_words}|{c.user_words}"
               f"|t{TOKENIZER_VERSION}|en:{english}")
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    def fingerprint(self) -> str:
        """Identifies articles + model + indexing parameters; a saved index with another fingerprint is stale."""
        return f"{self._params_fingerprint()}-{_article_hash(self._state.articles.values())}"

    def _new_base_index(self, vectors: np.ndarray) -> Any:
        d = self.embedder.dim
        if len(vectors) <= self.config.flat_max_passages:
            index: Any = faiss.IndexFlatIP(d)
        else:
            index = faiss.IndexHNSWFlat(d, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.config.hnsw_ef_construction
            index.hnsw.efSearch = max(self.config.hnsw_ef_search, self.config.candidates)
        if len(vectors):
            index.add(vectors)
        return index

    def _make_state(
        self,
        articles: dict[str, Article],
        passages: Sequence[Passage],
        tokens: Sequence[Sequence[str]],
        embeddings: np.ndarray,
        alive: Sequence[bool] | np.ndarray,
        base_index: Any | None = None,
        n_base: int | None = None,
        en_vectors: np.ndarray | None = None,
    ) -> _State:
        """en_vectors: the English model's vectors of the English passages, in row order (required when an English
        model is configured)."""
        order = tuple(dict.fromkeys([p.article_id for p in passages] + list(articles)))
        pos = {a: i for i, a in enumerate(order)}
        row_article = np.fromiter((pos[p.article_id] for p in passages), dtype=np.int32, count=len(passages))
        alive_arr = np.asarray(alive, dtype=bool).reshape(-1)
        if base_index is None:
            n_base = len(passages)
            base_index = self._new_base_index(embeddings)
        assert n_base is not None
        delta = None
        if len(passages) > n_base:
            delta = faiss.IndexFlatIP(self.embedder.dim)
            delta.add(embeddings[n_base:])
        bm25_rows = np.flatnonzero(alive_arr).astype(np.int64)
        bm25 = None
        docs = [list(tokens[int(r)]) or ["\u2205"] for r in bm25_rows]
        if docs:
            bm25 = bm25s.BM25()
            bm25.index(docs, show_progress=False)
        passage_row: dict[tuple[str, str], list[int]] = {}
        article_tokens: dict[str, set[str]] = {}
        for i, p in enumerate(passages):
            passage_row.setdefault((p.article_id, p.text), []).append(i)
            if alive_arr[i]:
                article_tokens.setdefault(p.article_id, set()).update(tokens[i])
        df: dict[str, int] = {}
        for toks in article_tokens.values():
            for t in toks:
                df[t] = df.get(t, 0) + 1
        n_art = max(1, len(article_tokens))
        en_rows = np.fromiter((i for i, p in enumerate(passages) if p.lang == "en"), dtype=np.int64)
        if self.english_embedder is not None:
            if en_vectors is None and not len(en_rows):
                en_vectors = np.zeros((0, self.english_embedder.dim), np.float32)
            if en_vectors is None or len(en_vectors) != len(en_rows):
                raise ValueError("English vectors do not match the English passages")
        idf = {t: float(np.log((n_art + 1) / (c + 0.5))) for t, c in df.items()}
        return _State(
            articles=dict(articles),
            passages=tuple(passages),
            tokens=tuple(tuple(t) for t in tokens),
            row_article=row_article,
            article_order=order,
            alive=alive_arr,
            embeddings=embeddings,
            n_base=n_base,
            base_index=base_index,
            delta_index=delta,
            bm25=bm25,
            bm25_rows=bm25_rows,
            passage_row=passage_row,
            article_tokens={a: frozenset(t) for a, t in article_tokens.items()},
            idf=idf,
            max_idf=float(np.log((n_art + 1) / 0.5)),
            en_rows=en_rows,
            en_vectors=en_vectors if self.english_embedder is not None else None,
        )

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

    def _embed_english(
        self, passages: Sequence[Passage], cache: dict[str, np.ndarray] | None = None
    ) -> np.ndarray | None:
        """The English model's vectors of the English passages (in order), or None without an English model."""
        if self.english_embedder is None:
            return None
        return self._embed([p.text for p in passages if p.lang == "en"], cache, self.english_embedder)

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
        tokens = [self.tokenizer.tokenize(p.text) for p in passages]
        emb = self._embed([p.text for p in passages], vector_cache)
        en = self._embed_english(passages, english_cache)
        state = self._make_state(arts, passages, tokens, emb, [True] * len(passages), en_vectors=en)
        with self._write_lock:
            self._state = state
        ms = round(1000 * (time.perf_counter() - t0))
        log.info("kb.index_built", articles=len(arts), passages=len(passages), ms=ms)

    # ---------- editing ----------

    def upsert(self, article: Article) -> None:
        """Add or replace one article (unpublished = not searchable); visible to searches when this returns."""
        passages = article_passages(article, self.config) if article.published else []
        tokens = [self.tokenizer.tokenize(p.text) for p in passages]
        emb = self._embed([p.text for p in passages])
        en = self._embed_english(passages)
        with self._write_lock:
            self._state = self._apply(self._state, article.id, article, passages, tokens, emb, en)

    def remove(self, article_id: str) -> bool:
        """Remove an article; returns False if it was not there."""
        with self._write_lock:
            if article_id not in self._state.articles:
                return False
            self._state = self._apply(self._state, article_id, None, [], [], self._embed([]),
                                      self._embed_english([]))
            return True

    def _apply(
        self,
        st: _State,
        article_id: str,
        article: Article | None,
        passages: list[Passage],
        tokens: list[list[str]],
        emb: np.ndarray,
        en: np.ndarray | None = None,
    ) -> _State:
        articles = dict(st.articles)
        if article is None:
            articles.pop(article_id, None)
        else:
            articles[article_id] = article
        alive = st.alive.copy()
        if article_id in st.article_order:
            alive[st.row_article == st.article_order.index(article_id)] = False
        all_passages = list(st.passages) + passages
        all_tokens = [list(t) for t in st.tokens] + tokens
        embeddings = np.vstack([st.embeddings, emb.astype(np.float32)]) if len(emb) else st.embeddings
        alive_all = np.concatenate([alive, np.ones(len(passages), dtype=bool)])
        en_all = (np.vstack([st.en_vectors, en.astype(np.float32)])
                  if st.en_vectors is not None and en is not None else None)
        n_delta = len(all_passages) - st.n_base
        dead = int((~alive_all).sum())
        if n_delta > max(64, st.n_base // 10) or dead > max(256, len(all_passages) // 4):
            keep = np.flatnonzero(alive_all)
            if en_all is not None:
                en_rows_all = np.fromiter((i for i, p in enumerate(all_passages) if p.lang == "en"), np.int64)
                en_all = np.ascontiguousarray(en_all[alive_all[en_rows_all]])
            return self._make_state(
                articles,
                [all_passages[i] for i in keep],
                [all_tokens[i] for i in keep],
                np.ascontiguousarray(embeddings[keep]),
                [True] * len(keep),
                en_vectors=en_all,
            )
        return self._make_state(
            articles, all_passages, all_tokens, embeddings, alive_all, base_index=st.base_index, n_base=st.n_base,
            en_vectors=en_all,
        )

    # ---------- reading ----------

    def articles(self) -> list[Article]:
        return list(self._state.articles.values())

    def get(self, article_id: str) -> Article | None:
        return self._state.articles.get(article_id)

    def _dense_rows(self, st: _State, qv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(st.passages)
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        dead_base = st.n_base - int(st.alive[: st.n_base].sum())
        k_base = min(st.n_base, self.config.candidates + dead_base)
        rows_l: list[np.ndarray] = []
        scores_l: list[np.ndarray] = []
        if k_base > 0:
            s, i = st.base_index.search(qv[None, :], k_base)
            rows_l.append(i[0])
            scores_l.append(s[0])
        if st.delta_index is not None:
            s, i = st.delta_index.search(qv[None, :], n - st.n_base)
            rows_l.append(i[0] + st.n_base)
            scores_l.append(s[0])
        rows = np.concatenate(rows_l)
        scores = np.concatenate(scores_l)
        ok = rows >= 0
        rows, scores = rows[ok], scores[ok]
        ok = st.alive[rows]
        return rows[ok], scores[ok]

    def _bm25_rows(self, st: _State, tokens: list[str]) -> tuple[np.ndarray, np.ndarray, float]:
        if st.bm25 is None or not tokens:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), 0.0
        vocab = st.bm25.vocab_dict
        known = [t for t in tokens if t in vocab]
        coverage = len(known) / len(tokens)
        if not known:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), coverage
        scores = st.bm25.get_scores(known)
        k = min(len(scores), self.config.candidates * 4)
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[scores[top] > 0]
        return st.bm25_rows[top], scores[top], coverage

    @staticmethod
    def _aggregate(
        st: _State, rows: np.ndarray, scores: np.ndarray, allowed: np.ndarray | None
    ) -> tuple[dict[int, float], dict[int, int]]:
        """Max passage score per article → ({article index: score}, {article index: best row})."""
        if len(rows) == 0:
            return {}, {}
        arts = st.row_article[rows]
        if allowed is not None:
            ok = allowed[arts]
            rows, scores, arts = rows[ok], scores[ok], arts[ok]
        order = np.argsort(-scores, kind="stable")
        arts_sorted = arts[order]
        uniq, first = np.unique(arts_sorted, return_index=True)
        best = order[first]
        return (
            {int(a): float(scores[b]) for a, b in zip(uniq, best, strict=True)},
            {int(a): int(rows[b]) for a, b in zip(uniq, best, strict=True)},
        )

    def encode_query(self, normalized_query: str, embedder: Embedder | None = None) -> np.ndarray:
        """The query's vector: the embedder's query path (cache, int8 model) when it has one."""
        embedder = embedder or self.embedder
        encode_query = getattr(embedder, "encode_query", None)
        if encode_query is not None:
            return np.asarray(encode_query(normalized_query), dtype=np.float32)
        return embedder.encode([normalized_query])[0]

    def _english_scores(
        self, st: _State, english_vector: Future[np.ndarray], candidates: Iterable[int],
        allowed: np.ndarray | None, hidden: Sequence[int] = (),
    ) -> dict[int, float]:
        """The English model's best passage similarity per candidate article (English passages only)."""
        if st.en_vectors is None or not len(st.en_rows):
            return {}
        wanted = np.zeros(len(st.article_order), dtype=bool)
        wanted[np.fromiter(candidates, dtype=np.int64)] = True
        keep = wanted[st.row_article[st.en_rows]] & st.alive[st.en_rows]
        if len(hidden):
            keep &= ~np.isin(st.en_rows, hidden)
        picked = np.flatnonzero(keep)
        if not len(picked):
            return {}
        qv = english_vector.result()
        scores, _ = self._aggregate(st, st.en_rows[picked], st.en_vectors[picked] @ qv, allowed)
        return scores

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
        tokens = self.tokenizer.tokenize(qn)
        allowed = st.filter_mask(lang, department) if department is not None or lang is not None else None
        english_vector: Future[np.ndarray] | None = None
        if (q_lang == "en" and method != "bm25" and self.english_embedder is not None
                and st.en_vectors is not None and self.config.english_weight > 0):
            # Why another thread: both encoders release the GIL, so with a core free the two encodings overlap
            # (measured on the dev set's English queries: p50 12.2 → 7.4 ms, p99 16.0 → 10.2 ms).
            english_vector = self._english_encoder.submit(self.encode_query, qn, self.english_embedder)
        qv = query_vector if query_vector is not None else self.encode_query(qn)
        d_rows, d_scores = self._dense_rows(st, qv)
        b_rows, b_scores, coverage = self._bm25_rows(st, tokens)
        if exclude_passage is not None:
            hidden = st.passage_row.get(exclude_passage, [])
            if hidden:
                keep = ~np.isin(d_rows, hidden)
                d_rows, d_scores = d_rows[keep], d_scores[keep]
                keep = ~np.isin(b_rows, hidden)
                b_rows, b_scores = b_rows[keep], b_scores[keep]
        dense, d_best = self._aggregate(st, d_rows, d_scores, allowed)
        bm25, b_best = self._aggregate(st, b_rows, b_scores, allowed)
        semantic, dense_weight = dense, self.config.dense_weight
        english: dict[int, float] = {}
        if english_vector is not None and (dense or bm25):
            hidden = st.passage_row.get(exclude_passage, []) if exclude_passage is not None else []
            english = self._english_scores(st, english_vector, set(dense) | set(bm25), allowed, hidden)
            if english:
                semantic = mix_scores(dense, english, self.config.english_weight)
                dense_weight = self.config.english_dense_weight
        if method == "dense":
            fused = dict(semantic)
        elif method == "bm25":
            fused = dict(bm25)
        elif self.config.fusion == "weighted":
            fused = weighted_sum(semantic, bm25, dense_weight)
        else:
            fused = reciprocal_rank_fusion(semantic, bm25, self.config.rrf_k, self.config.rrf_dense_weight)
        order = sorted(fused, key=lambda a: -fused[a])
        d_sorted = sorted(dense.values(), reverse=True)
        b_sorted = sorted(bm25.values(), reverse=True)
        d_top = max(dense, key=lambda a: dense[a]) if dense else -1
        b_top = max(bm25, key=lambda a: bm25[a]) if bm25 else -2
        top_tokens = st.article_tokens.get(st.article_order[order[0]], frozenset()) if order else frozenset()
        weights = [st.idf.get(t, st.max_idf) for t in tokens]
        d_head = np.asarray(d_sorted[:10])
        signals = RankingSignals(
            dense_top=d_sorted[0] if d_sorted else 0.0,
            dense_second=d_sorted[1] if len(d_sorted) > 1 else 0.0,
            bm25_top=b_sorted[0] if b_sorted else 0.0,
            bm25_second=b_sorted[1] if len(b_sorted) > 1 else 0.0,
            agree=d_top == b_top,
            fused_top_dense=dense.get(order[0], min(d_sorted, default=0.0)) if order else 0.0,
            coverage=coverage,
            top_coverage=sum(t in top_tokens for t in tokens) / len(tokens) if tokens else 0.0,
            n_tokens=len(tokens),
            idf_top_coverage=(
                sum(w for t, w in zip(tokens, weights, strict=True) if t in top_tokens) / sum(weights)
                if tokens and sum(weights) > 0
                else 0.0
            ),
            dense_z=float((d_head[0] - d_head.mean()) / (d_head.std() + 1e-3)) if len(d_head) > 1 else 0.0,
            english=q_lang == "en",
            english_top=max(english.values()) if english else None,
            mixed=q_lang == "zh" and _LATIN_WORD.search(qn) is not None,
        )
        ids = [st.article_order[a] for a in order]
        best_passage = {}
        for a in order[:20]:
            row = d_best.get(a, b_best.get(a))
            if row is not None:
                best_passage[st.article_order[a]] = st.passages[row].text
        return Ranking(
            article_ids=ids,
            scores=[fused[a] for a in order],
            dense={st.article_order[a]: s for a, s in dense.items()},
            bm25={st.article_order[a]: s for a, s in bm25.items()},
            best_passage=best_passage,
            signals=signals,
            lang=q_lang,
        )

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
        st = self._state
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / ".tmp"
        tmp.mkdir(exist_ok=True)
        with (tmp / "articles.jsonl").open("w", encoding="utf-8") as fh:
            for a in st.articles.values():
                fh.write(json.dumps(a.to_dict(), ensure_ascii=False) + "\n")
        with (tmp / "passages.jsonl").open("w", encoding="utf-8") as fh:
            for p, t in zip(st.passages, st.tokens, strict=True):
                fh.write(json.dumps([p.article_id, p.field, p.lang, p.text, list(t)], ensure_ascii=False) + "\n")
        np.save(tmp / "embeddings.npy", st.embeddings)
        if st.en_vectors is not None:
            np.save(tmp / "english.npy", st.en_vectors)
        np.save(tmp / "alive.npy", st.alive)
        faiss.write_index(st.base_index, str(tmp / "base.faiss"))
        manifest = {
            "format": FORMAT_VERSION,
            "params": self._params_fingerprint(),
            "articles": _article_hash(st.articles.values()),
            "model": self.embedder.fingerprint,
            "english_model": self.english_embedder.fingerprint if self.english_embedder is not None else None,
            "n_base": st.n_base,
            "saved_at": time.time(),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        # Why manifest last: a reader that sees the new manifest also sees the files it describes.
        for f in sorted(tmp.iterdir(), key=lambda f: f.name == "manifest.json"):
            f.replace(directory / f.name)
        tmp.rmdir()

    def load(self, directory: Path, expected: Iterable[Article] | None = None) -> None:
        """Load a saved index. Raises StaleIndexError if the model/parameters (or, when `expected` articles are
        given, the articles) differ from what was saved, FileNotFoundError if there is none."""
        manifest = json.loads((directory / "manifest.json").read_text())
        if manifest.get("format") != FORMAT_VERSION or manifest.get("params") != self._params_fingerprint():
            raise StaleIndexError("index built with another model or other indexing parameters")
        if expected is not None and manifest.get("articles") != _article_hash(expected):
            raise StaleIndexError("articles changed since the index was saved")
        arts = [Article.from_dict(json.loads(line)) for line in (directory / "articles.jsonl").open(encoding="utf-8")]
        passages: list[Passage] = []
        tokens: list[list[str]] = []
        for line in (directory / "passages.jsonl").open(encoding="utf-8"):
            aid, fld, lang, text, toks = json.loads(line)
            passages.append(Passage(aid, fld, lang, text))
            tokens.append(toks)
        emb = np.load(directory / "embeddings.npy")
        alive = np.load(directory / "alive.npy")
        english = np.load(directory / "english.npy") if self.english_embedder is not None else None
        base = faiss.read_index(str(directory / "base.faiss"))
        if isinstance(base, faiss.IndexHNSW):
            base.hnsw.efSearch = max(self.config.hnsw_ef_search, self.config.candidates)
        state = self._make_state(
            {a.id: a for a in arts}, passages, tokens, emb, alive, base_index=base, n_base=int(manifest["n_base"]),
            en_vectors=english,
        )
        with self._write_lock:
            self._state = state

    def vector_cache(self) -> dict[str, np.ndarray]:
        """Passage text → vector, to rebuild after edits without re-embedding unchanged passages."""
        st = self._state
        return {p.text: st.embeddings[i] for i, p in enumerate(st.passages)}

    def english_vector_cache(self) -> dict[str, np.ndarray]:
        """English passage text → the English model's vector (empty without an English model)."""
        st = self._state
        if st.en_vectors is None:
            return {}
        return {st.passages[int(r)].text: st.en_vectors[i] for i, r in enumerate(st.en_rows)}


def saved_vectors(directory: Path, model_fingerprint: str, english: bool = False) -> dict[str, np.ndarray] | None:
    """Passage text → vector from a saved index built with this model (whatever else changed), else None.
    english: the English model's vectors (of the English passages) instead of the main model's."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        if manifest.get("english_model" if english else "model") != model_fingerprint:
            return None
        emb = np.load(directory / ("english.npy" if english else "embeddings.npy"))
        rows = [json.loads(line) for line in (directory / "passages.jsonl").open(encoding="utf-8")]
        texts = [r[3] for r in rows if not english or r[2] == "en"]
    except (OSError, ValueError, IndexError):
        return None
    return dict(zip(texts, emb, strict=False)) if len(texts) == len(emb) else None


def build_knowledge_base(
    config: KBConfig,
    articles: Sequence[Article],
    embedder: Embedder | None = None,
    calibration: Calibration | None = None,
    tokenizer: Tokenizer | None = None,
    english_embedder: Embedder | None = None,
) -> KnowledgeBase:
    """The factory: load the saved index from config.index_dir when it is current, else build (re-embedding only
    passages whose text changed) and save it. english_embedder: None loads config.english_model (when set)."""
    from kb_retrieval.embedding import SentenceTransformerEmbedder, resolve_english_model, resolve_model

    def load(location: str) -> Embedder:
        return SentenceTransformerEmbedder(location, config.torch_threads, quantize_queries=config.quantize_queries,
                                           query_encoder_dir=config.query_encoder_dir)

    if embedder is None:
        embedder = load(resolve_model(config.model))
    if english_embedder is None and (english_location := resolve_english_model(config.english_model)):
        english_embedder = load(english_location)
    if calibration is None and config.calibration_path is not None and config.calibration_path.exists():
        family = getattr(embedder, "family", embedder.fingerprint)
        calibration, matched = pick_calibration(load_calibrations(config.calibration_path), family,
                                                embedder.fingerprint)
        if matched == "fallback":
            log.warning("kb.calibration_model_mismatch", calibration=str(config.calibration_path), family=family)
        else:
            log.info("kb.calibration", matched=matched, family=family)
    kb = KnowledgeBase(config, embedder, calibration, tokenizer, english_embedder)
    kb.tokenizer.warm_up()
    cache: dict[str, np.ndarray] | None = None
    english_cache: dict[str, np.ndarray] | None = None
    if config.index_dir is not None and (config.index_dir / "manifest.json").exists():
        try:
            kb.load(config.index_dir, expected=articles)
            log.info("kb.index_loaded", dir=str(config.index_dir), articles=len(articles))
            return kb
        except StaleIndexError as exc:
            log.info("kb.index_stale", reason=str(exc))
            cache = saved_vectors(config.index_dir, embedder.fingerprint)  # same model: reuse unchanged passages
            if english_embedder is not None:
                english_cache = saved_vectors(config.index_dir, english_embedder.fingerprint, english=True)
    kb.rebuild(articles, cache, english_cache)
    if config.index_dir is not None:
        kb.save(config.index_dir)
    return kb
