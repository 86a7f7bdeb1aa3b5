"""The index's data at one moment: one immutable `IndexState` holds everything a search reads, and a new state is
made from articles' passages and vectors (`build_state`) or from the previous state and one edit (`with_article`).

Dense rows [0, n_base) sit in a base FAISS index (exact IndexFlatIP up to `flat_max_passages`, HNSW above); rows
appended by edits sit in a small exact delta index; replaced or removed rows are masked as dead. When the delta
grows past a tenth of the base, or dead rows pile up, the next edit rebuilds the base from the live rows
(compaction). BM25 and the word statistics are rebuilt from the live rows every time (they are cheap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import bm25s
import faiss
import numpy as np

from kb_retrieval.articles import Article
from kb_retrieval.config import KBConfig
from kb_retrieval.passages import Passage, english_rows


@dataclass(frozen=True)
class IndexState:
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

    def vectors_by_text(self, english: bool = False) -> dict[str, np.ndarray]:
        """Passage text → the main model's vector (english: the English model's, empty without that model)."""
        if not english:
            return {p.text: self.embeddings[i] for i, p in enumerate(self.passages)}
        if self.en_vectors is None:
            return {}
        return {self.passages[int(r)].text: self.en_vectors[i] for i, r in enumerate(self.en_rows)}


def tune_hnsw(index: Any, config: KBConfig) -> None:
    """Search breadth of an HNSW index (not saved with it): at least as many neighbours as candidates asked."""
    index.hnsw.efSearch = max(config.hnsw_ef_search, config.candidates)


def new_base_index(vectors: np.ndarray, dim: int, config: KBConfig) -> Any:
    """The base FAISS index over these vectors: exact up to config.flat_max_passages, HNSW above."""
    if len(vectors) <= config.flat_max_passages:
        index: Any = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.hnsw_ef_construction
        tune_hnsw(index, config)
    if len(vectors):
        index.add(vectors)
    return index


def build_state(
    config: KBConfig,
    dim: int,
    english_dim: int | None,
    articles: dict[str, Article],
    passages: Sequence[Passage],
    tokens: Sequence[Sequence[str]],
    embeddings: np.ndarray,
    alive: Sequence[bool] | np.ndarray,
    base_index: Any | None = None,
    n_base: int | None = None,
    en_vectors: np.ndarray | None = None,
) -> IndexState:
    """A state over these rows. dim: the main model's; english_dim: the English model's (None: no English model).
    base_index/n_base: reuse a base index holding the first n_base rows (else one is built over all of them).
    en_vectors: the English model's vectors of the English passages, in row order (required with an English
    model)."""
    order = tuple(dict.fromkeys([p.article_id for p in passages] + list(articles)))
    pos = {a: i for i, a in enumerate(order)}
    row_article = np.fromiter((pos[p.article_id] for p in passages), dtype=np.int32, count=len(passages))
    alive_arr = np.asarray(alive, dtype=bool).reshape(-1)
    if base_index is None:
        n_base = len(passages)
        base_index = new_base_index(embeddings, dim, config)
    assert n_base is not None
    delta = None
    if len(passages) > n_base:
        delta = faiss.IndexFlatIP(dim)
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
    en_rows = english_rows(passages)
    if english_dim is not None:
        if en_vectors is None and not len(en_rows):
            en_vectors = np.zeros((0, english_dim), np.float32)
        if en_vectors is None or len(en_vectors) != len(en_rows):
            raise ValueError("English vectors do not match the English passages")
    idf = {t: float(np.log((n_art + 1) / (c + 0.5))) for t, c in df.items()}
    return IndexState(
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
        en_vectors=en_vectors if english_dim is not None else None,
    )


def with_article(
    st: IndexState,
    config: KBConfig,
    dim: int,
    english_dim: int | None,
    article_id: str,
    article: Article | None,
    passages: list[Passage],
    tokens: list[list[str]],
    emb: np.ndarray,
    en: np.ndarray | None = None,
) -> IndexState:
    """The state after replacing (article given) or removing (None) one article: its old rows die, its new
    passages (with their vectors emb and English vectors en) are appended, and the base is compacted when due."""
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
            en_all = np.ascontiguousarray(en_all[alive_all[english_rows(all_passages)]])
        return build_state(
            config,
            dim,
            english_dim,
            articles,
            [all_passages[i] for i in keep],
            [all_tokens[i] for i in keep],
            np.ascontiguousarray(embeddings[keep]),
            [True] * len(keep),
            en_vectors=en_all,
        )
    return build_state(
        config, dim, english_dim, articles, all_passages, all_tokens, embeddings, alive_all,
        base_index=st.base_index, n_base=st.n_base, en_vectors=en_all,
    )
