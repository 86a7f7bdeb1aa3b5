"""Evaluate KB search on a labelled query file: hit@1, hit@3, MRR, refusals, per kind, for each method.

    python -m kb_retrieval.evaluate --kb /work/shared/kb/articles.jsonl --queries kb_retrieval/eval/tune.jsonl

Query files are JSON Lines {"q", "expected" (article id or null = out of scope), "kind"}.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kb_retrieval.articles import load_articles
from kb_retrieval.config import KBConfig
from kb_retrieval.factory import build_knowledge_base
from kb_retrieval.index import KnowledgeBase
from kb_retrieval.ranking import Ranking
from kb_retrieval.text import normalize

METHOD_ROWS = ("bm25", "dense", "hybrid-rrf", "hybrid-weighted")


@dataclass(frozen=True)
class Query:
    q: str
    expected: str | None
    kind: str


def load_queries(path: Path) -> list[Query]:
    out = []
    for line in path.open(encoding="utf-8"):
        if line.strip():
            d = json.loads(line)
            out.append(Query(d["q"], d.get("expected"), d.get("kind", "unknown")))
    return out


@contextmanager
def configured(kb: KnowledgeBase, config: KBConfig) -> Iterator[None]:
    """Rank with another configuration (fusion, weights) for a while; the index itself is the same."""
    original = kb.config
    kb.config = config
    try:
        yield
    finally:
        kb.config = original


def rank_all(kb: KnowledgeBase, queries: list[Query]) -> dict[str, list[Ranking]]:
    """Rankings of every query by every method (the query is embedded once)."""
    rrf = replace(kb.config, fusion="rrf")
    weighted = replace(kb.config, fusion="weighted")
    out: dict[str, list[Ranking]] = defaultdict(list)
    for q in queries:
        qv = kb.encode_query(normalize(q.q))
        out["bm25"].append(kb.rank(q.q, "bm25", query_vector=qv))
        out["dense"].append(kb.rank(q.q, "dense", query_vector=qv))
        with configured(kb, rrf):
            out["hybrid-rrf"].append(kb.rank(q.q, "hybrid", query_vector=qv))
        with configured(kb, weighted):
            out["hybrid-weighted"].append(kb.rank(q.q, "hybrid", query_vector=qv))
    return out


def metrics(kb: KnowledgeBase, queries: list[Query], rankings: list[Ranking]) -> dict[str, dict[str, float]]:
    """Per kind (and "all"): hit@1, hit@3, MRR over in-scope queries; refused shares from the calibration."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(queries):
        groups[q.kind].append(i)
        groups["all"].append(i)
    out: dict[str, dict[str, float]] = {}
    for kind, idx in groups.items():
        ins = [i for i in idx if queries[i].expected is not None]
        oos = [i for i in idx if queries[i].expected is None]
        row: dict[str, float] = {"n": float(len(idx))}
        if ins:
            ranks = []
            for i in ins:
                ids = rankings[i].article_ids
                exp = queries[i].expected
                ranks.append(ids.index(exp) + 1 if exp in ids else 10**9)
            r = np.array(ranks)
            row["hit@1"] = float((r == 1).mean())
            row["hit@3"] = float((r <= 3).mean())
            row["mrr"] = float((1.0 / r).mean())
        if kb.calibration is not None:
            refused = [not kb.calibration.answerable(rankings[i].signals) for i in idx]
            ref = dict(zip(idx, refused, strict=True))
            if oos:
                row["oos_refused"] = float(np.mean([ref[i] for i in oos]))
            if ins:
                row["ans_refused"] = float(np.mean([ref[i] for i in ins]))
        out[kind] = row
    return out


def print_table(title: str, table: dict[str, dict[str, dict[str, float]]]) -> None:
    print(f"\n== {title}")
    kinds = sorted({k for m in table.values() for k in m}, key=lambda k: (k == "all", k))
    print(f"{'method':<16}{'kind':<16}{'n':>5}{'hit@1':>8}{'hit@3':>8}{'MRR':>8}{'oos_ref':>9}{'ans_ref':>9}")
    for method, per_kind in table.items():
        for kind in kinds:
            found = per_kind.get(kind)
            if found is None:
                continue
            row: dict[str, float] = found

            def f(key: str, row: dict[str, float] = row) -> str:
                return f"{row[key]:.3f}" if key in row else "-"

            print(
                f"{method:<16}{kind:<16}{int(row['n']):>5}{f('hit@1'):>8}{f('hit@3'):>8}{f('mrr'):>8}"
                f"{f('oos_refused'):>9}{f('ans_refused'):>9}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kb", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True, nargs="+")
    ap.add_argument("--index-dir", type=Path, default=None, help="reuse/save the index here (faster reruns)")
    ap.add_argument("--sweep", action="store_true", help="also sweep fusion weights (use on tune data only)")
    ap.add_argument("--model", default=None, help="model path or name (default: KB_EMBEDDING_MODEL or m3e-small)")
    ap.add_argument("--full-precision-queries", action="store_true", help="queries through the float model")
    args = ap.parse_args()
    config = KBConfig.from_env(index_dir=args.index_dir, quantize_queries=not args.full_precision_queries,
                               **({"model": args.model} if args.model else {}))
    kb = build_knowledge_base(config, load_articles(args.kb))
    for path in args.queries:
        queries = load_queries(path)
        ranks = rank_all(kb, queries)
        print_table(str(path), {m: metrics(kb, queries, ranks[m]) for m in METHOD_ROWS})
        if args.sweep:
            sweep(kb, queries)


def sweep(kb: KnowledgeBase, queries: list[Query]) -> None:
    original = kb.config
    vecs = [kb.encode_query(normalize(q.q)) for q in queries]
    ins = [i for i, q in enumerate(queries) if q.expected is not None]
    grid: list[tuple[str, KBConfig]] = []
    for w in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        grid.append((f"weighted w={w}", replace(original, fusion="weighted", dense_weight=w)))
    for k in (10.0, 30.0, 60.0):
        for dw in (0.7, 1.0, 1.5):
            grid.append((f"rrf k={k} dw={dw}", replace(original, fusion="rrf", rrf_k=k, rrf_dense_weight=dw)))
    for name, cfg in grid:
        with configured(kb, cfg):
            r = [kb.rank(queries[i].q, "hybrid", query_vector=vecs[i]) for i in ins]
        h1 = np.mean([r[j].article_ids[:1] == [queries[i].expected] for j, i in enumerate(ins)])
        h3 = np.mean([queries[i].expected in r[j].article_ids[:3] for j, i in enumerate(ins)])
        print(f"sweep {name:<22} hit@1={h1:.3f} hit@3={h3:.3f}")


if __name__ == "__main__":
    main()
