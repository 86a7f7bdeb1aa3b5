"""The ranking signals the calibrated "don't know" reads: what they are (`RankingSignals`, named by `FEATURES`) and
how one query's article scores become them (`ranking_signals`).

The refusal model itself (fitted weights, threshold) is in answerable.py; ranking.py calls `ranking_signals`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

_LATIN_WORD = re.compile(r"[a-z]{2,}")

FEATURES: tuple[str, ...] = (
    "dense_top",
    "dense_gap",
    "bm25_top_log",
    "bm25_gap_rel",
    "agree",
    "fused_dense",
    "coverage",
    "top_coverage",
    "idf_top_coverage",
    "dense_z",
    "english",
    "english_top",
    "mixed",
)


@dataclass(frozen=True)
class RankingSignals:
    """What a search saw, in a form the refusal model can use."""

    dense_top: float
    dense_second: float
    bm25_top: float
    bm25_second: float
    agree: bool
    fused_top_dense: float
    coverage: float  # share of query words known to the index
    top_coverage: float  # share of query words found in the best article
    n_tokens: int
    idf_top_coverage: float = 0.0  # the same, weighted by the words' rarity across articles
    dense_z: float = 0.0  # how far the best dense score stands out of the top ten (in their standard deviations)
    english: bool = False  # an English query: its scores run lower (the model and the KB are mainly Chinese)
    # The English model's best similarity, for English queries when one is configured; None = not measured, which
    # the refusal model reads as neutral (the mean of its fit data), so it also serves indexes without that model.
    english_top: float | None = None
    mixed: bool = False  # Chinese with English words in it ("residence permit 怎么办"): both models read it worse

    def select(self, features: tuple[str, ...]) -> np.ndarray:
        """The named features in that order (a calibration fitted on fewer features still applies)."""
        v = self.vector()
        return np.array([v[FEATURES.index(f)] for f in features], dtype=np.float64)

    def as_dict(self) -> dict[str, float | None]:
        """The features by name (what the refusal model weighs), for logs, the API and other deciders."""
        return {name: None if math.isnan(v) else round(float(v), 4)
                for name, v in zip(FEATURES, self.vector(), strict=True)}

    def vector(self) -> np.ndarray:
        return np.array(
            [
                self.dense_top,
                self.dense_top - self.dense_second,
                math.log1p(self.bm25_top),
                (self.bm25_top - self.bm25_second) / self.bm25_top if self.bm25_top > 0 else 0.0,
                1.0 if self.agree else 0.0,
                self.fused_top_dense,
                self.coverage,
                self.top_coverage,
                self.idf_top_coverage,
                self.dense_z,
                1.0 if self.english else 0.0,
                math.nan if self.english_top is None else self.english_top,
                1.0 if self.mixed else 0.0,
            ],
            dtype=np.float64,
        )


def ranking_signals(
    *,
    dense: Mapping[int, float],
    bm25: Mapping[int, float],
    fused_top: int | None,
    top_tokens: frozenset[str],
    tokens: Sequence[str],
    coverage: float,
    idf: Mapping[str, float],
    max_idf: float,
    english: Mapping[int, float],
    query_lang: str,
    normalized_query: str,
) -> RankingSignals:
    """The signals of one ranking.

    dense, bm25, english: each retriever's best passage score per candidate article; fused_top: the article ranked
    first (None: no candidate) and top_tokens its words; tokens: the query's BM25 tokens, coverage the share of
    them known to the index; idf: word rarity across articles (max_idf for a word no article has).
    """
    d_sorted = sorted(dense.values(), reverse=True)
    b_sorted = sorted(bm25.values(), reverse=True)
    d_top = max(dense, key=lambda a: dense[a]) if dense else -1
    b_top = max(bm25, key=lambda a: bm25[a]) if bm25 else -2  # not -1: no candidates on either side is no agreement
    weights = [idf.get(t, max_idf) for t in tokens]
    d_head = np.asarray(d_sorted[:10])
    return RankingSignals(
        dense_top=d_sorted[0] if d_sorted else 0.0,
        dense_second=d_sorted[1] if len(d_sorted) > 1 else 0.0,
        bm25_top=b_sorted[0] if b_sorted else 0.0,
        bm25_second=b_sorted[1] if len(b_sorted) > 1 else 0.0,
        agree=d_top == b_top,
        fused_top_dense=dense.get(fused_top, min(d_sorted, default=0.0)) if fused_top is not None else 0.0,
        coverage=coverage,
        top_coverage=sum(t in top_tokens for t in tokens) / len(tokens) if tokens else 0.0,
        n_tokens=len(tokens),
        idf_top_coverage=(
            sum(w for t, w in zip(tokens, weights, strict=True) if t in top_tokens) / sum(weights)
            if tokens and sum(weights) > 0
            else 0.0
        ),
        dense_z=float((d_head[0] - d_head.mean()) / (d_head.std() + 1e-3)) if len(d_head) > 1 else 0.0,
        english=query_lang == "en",
        english_top=max(english.values()) if english else None,
        mixed=query_lang == "zh" and _LATIN_WORD.search(normalized_query) is not None,
    )
