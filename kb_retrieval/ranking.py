"""Ranking one query against an index state: candidate passages from FAISS and BM25, each article scored by its
best passage, English queries re-scored with the English model, the scores fused (fusion.py), and the signals of
the result computed for the calibrated "don't know" (signals.py).

English queries: the main model (m3e-small) is trained mostly on Chinese. When an English model is configured
(all-MiniLM-L6-v2 by default), the English passages also have its vectors, and an English query's candidate
articles (found by the main model and BM25) get a mix of both models' similarities as their semantic score
(`KBConfig.english_weight`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from kb_retrieval.config import KBConfig
from kb_retrieval.fusion import mix_scores, reciprocal_rank_fusion, weighted_sum
from kb_retrieval.index_state import IndexState
from kb_retrieval.signals import RankingSignals, ranking_signals


@dataclass(frozen=True)
class EncodedQuery:
    """A query as ranking reads it: normalised text, language, BM25 tokens and vectors."""

    normalized: str
    lang: str
    tokens: list[str]
    vector: np.ndarray
    # The English model's vector, still being encoded on another thread; None when it is not used.
    english_vector: Future[np.ndarray] | None = None


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


def rank_articles(
    st: IndexState,
    config: KBConfig,
    query: EncodedQuery,
    method: str = "hybrid",
    lang: str | None = None,
    department: str | None = None,
    exclude_passage: tuple[str, str] | None = None,
) -> Ranking:
    """Every candidate article, best first, by method "bm25", "dense" or "hybrid" (config.fusion).

    lang, department: only articles with text in that language / of that department. exclude_passage=(article_id,
    text) hides one passage (calibration scores a sample question without its own copy in the index).
    """
    allowed = st.filter_mask(lang, department) if department is not None or lang is not None else None
    hidden = st.passage_row.get(exclude_passage, []) if exclude_passage is not None else []
    d_rows, d_scores = _without(*dense_candidates(st, query.vector, config.candidates), hidden)
    b_rows, b_scores, coverage = bm25_candidates(st, query.tokens, config.candidates * 4)
    b_rows, b_scores = _without(b_rows, b_scores, hidden)
    dense, d_best = best_per_article(st, d_rows, d_scores, allowed)
    bm25, b_best = best_per_article(st, b_rows, b_scores, allowed)
    semantic, dense_weight = dense, config.dense_weight
    english: dict[int, float] = {}
    if query.english_vector is not None and (dense or bm25):
        english = english_scores(st, query.english_vector, set(dense) | set(bm25), allowed, hidden)
        if english:
            semantic = mix_scores(dense, english, config.english_weight)
            dense_weight = config.english_dense_weight
    if method == "dense":
        fused = dict(semantic)
    elif method == "bm25":
        fused = dict(bm25)
    elif config.fusion == "weighted":
        fused = weighted_sum(semantic, bm25, dense_weight)
    else:
        fused = reciprocal_rank_fusion(semantic, bm25, config.rrf_k, config.rrf_dense_weight)
    order = sorted(fused, key=lambda a: -fused[a])
    top = order[0] if order else None
    signals = ranking_signals(
        dense=dense,
        bm25=bm25,
        fused_top=top,
        top_tokens=st.article_tokens.get(st.article_order[top], frozenset()) if top is not None else frozenset(),
        tokens=query.tokens,
        coverage=coverage,
        idf=st.idf,
        max_idf=st.max_idf,
        english=english,
        query_lang=query.lang,
        normalized_query=query.normalized,
    )
    best_passage = {}
    for a in order[:20]:
        row = d_best.get(a, b_best.get(a))
        if row is not None:
            best_passage[st.article_order[a]] = st.passages[row].text
    return Ranking(
        article_ids=[st.article_order[a] for a in order],
        scores=[fused[a] for a in order],
        dense={st.article_order[a]: s for a, s in dense.items()},
        bm25={st.article_order[a]: s for a, s in bm25.items()},
        best_passage=best_passage,
        signals=signals,
        lang=query.lang,
    )


def dense_candidates(st: IndexState, qv: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest live passages of the base index and every delta passage: (rows, inner products)."""
    n = len(st.passages)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    dead_base = st.n_base - int(st.alive[: st.n_base].sum())
    k_base = min(st.n_base, k + dead_base)
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


def bm25_candidates(st: IndexState, tokens: list[str], k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The k best BM25 passages with a positive score: (rows, scores, share of the query's tokens the index
    knows)."""
    if st.bm25 is None or not tokens:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), 0.0
    vocab = st.bm25.vocab_dict
    known = [t for t in tokens if t in vocab]
    coverage = len(known) / len(tokens)
    if not known:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), coverage
    scores = st.bm25.get_scores(known)
    k = min(len(scores), k)
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    top = top[scores[top] > 0]
    return st.bm25_rows[top], scores[top], coverage


def best_per_article(
    st: IndexState, rows: np.ndarray, scores: np.ndarray, allowed: np.ndarray | None
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


def english_scores(
    st: IndexState, english_vector: Future[np.ndarray], candidates: Iterable[int],
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
    scores, _ = best_per_article(st, st.en_rows[picked], st.en_vectors[picked] @ qv, allowed)
    return scores


def _without(rows: np.ndarray, scores: np.ndarray, hidden: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    if not hidden:
        return rows, scores
    keep = ~np.isin(rows, hidden)
    return rows[keep], scores[keep]
