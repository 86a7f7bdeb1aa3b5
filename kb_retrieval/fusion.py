"""Hybrid ranking: combine dense and BM25 article scores into one ranking.

Both functions take per-article score maps (article index → score, only candidates present) and return a map of
fused scores; higher is better.
"""

from __future__ import annotations

from collections.abc import Mapping


def _ranks(scores: Mapping[int, float]) -> dict[int, int]:
    order = sorted(scores, key=lambda a: (-scores[a], a))
    return {a: r for r, a in enumerate(order, start=1)}


def reciprocal_rank_fusion(
    dense: Mapping[int, float],
    lexical: Mapping[int, float],
    k: float = 60.0,
    dense_weight: float = 1.0,
) -> dict[int, float]:
    """Σ weight / (k + rank), BM25's weight 1; an article missing from one list gets nothing from it."""
    out: dict[int, float] = {}
    positive_lexical = {a: s for a, s in lexical.items() if s > 0}
    for ranks, w in ((_ranks(dense), dense_weight), (_ranks(positive_lexical), 1.0)):
        for a, r in ranks.items():
            out[a] = out.get(a, 0.0) + w / (k + r)
    return out


def weighted_sum(
    dense: Mapping[int, float], lexical: Mapping[int, float], dense_weight: float = 0.6
) -> dict[int, float]:
    """w·minmax(dense) + (1−w)·(bm25 / max bm25); a candidate missing from the dense list gets its minimum."""
    if not dense and not lexical:
        return {}
    scaled = min_max(dense)
    b_hi = max(lexical.values()) if lexical else 0.0
    out: dict[int, float] = {}
    for a in set(dense) | set(lexical):
        d = scaled.get(a, 0.0)
        b = lexical.get(a, 0.0) / b_hi if b_hi > 0 else 0.0
        out[a] = dense_weight * d + (1.0 - dense_weight) * b
    return out


def min_max(scores: Mapping[int, float]) -> dict[int, float]:
    """Scores scaled to [0, 1] (all 1.0 when they are equal)."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    span = hi - lo
    return {a: (s - lo) / span if span > 0 else 1.0 for a, s in scores.items()}


def mix_scores(main: Mapping[int, float], other: Mapping[int, float], other_weight: float) -> dict[int, float]:
    """(1−w)·minmax(main) + w·minmax(other) over both models' candidates (a missing score counts as the minimum).
    Used to blend the English model's similarities into the main model's for English queries."""
    a, b = min_max(main), min_max(other)
    return {k: (1.0 - other_weight) * a.get(k, 0.0) + other_weight * b.get(k, 0.0) for k in set(a) | set(b)}
