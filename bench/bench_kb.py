"""KB search benchmark: fine-tuning, quality (BM25 / dense / hybrid, base vs fine-tuned), latency, build, memory.

    .venv/bin/python bench/bench_kb.py [--kb ../shared/kb/articles.jsonl] [--large 100000] [--no-finetune]

Fine-tuning for the benchmark KB runs first (as `make train` does for KB_PATH; skipped when up to date), then the
quality tables are printed for m3e-small and for the fine-tuned model on the same queries (before / after), and
latency is measured with the model the gateway would use.
Latency is printed in ms and as a ratio to a baseline measured in the same run (a bare numpy dot-product top-k
over the same passage vectors), so numbers from different machines can be compared. "cold" searches encode the
query (the repeat-query cache is cleared before each); "cached" ones repeat a query already seen.
The large collection is synthetic: copies of the real articles whose passage vectors are the real ones plus small
Gaussian noise (re-normalised), because embedding ~1.7 M passages with m3e-small on 2 cores would take hours
(measured rate printed below). BM25 tokens are the real ones plus one token unique to each copy.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dataclasses import replace  # noqa: E402

from kb_retrieval import KBConfig, build_knowledge_base, load_articles  # noqa: E402
from kb_retrieval.embedding import default_model_location  # noqa: E402
from kb_retrieval.evaluate import METHOD_ROWS, load_queries, metrics, print_table, rank_all  # noqa: E402
from kb_retrieval.finetune import MARKER, ensure_finetuned, find_finetuned  # noqa: E402
from kb_retrieval.index import KnowledgeBase, Passage  # noqa: E402
from kb_retrieval.text import normalize  # noqa: E402


def rss_mb() -> float:
    return psutil.Process(os.getpid()).memory_info().rss / 2**20


def pct(xs: list[float]) -> tuple[float, float]:
    a = np.asarray(xs)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def baseline_topk(emb: np.ndarray, qvs: np.ndarray, k: int = 5) -> list[float]:
    lat = []
    for q in qvs:
        t = time.perf_counter()
        s = emb @ q
        top = np.argpartition(-s, k)[:k]
        top[np.argsort(-s[top])]
        lat.append((time.perf_counter() - t) * 1000)
    return lat


def latency(kb: KnowledgeBase, queries: list[str], qvs: np.ndarray) -> dict[str, list[float]]:
    """Wall and CPU (this thread's) milliseconds per search: CPU time is what the search costs; wall time adds
    waiting for a core, which on a shared, loaded machine can be most of it."""
    out: dict[str, list[float]] = {k: [] for k in ("cold", "cold_cpu", "cached", "cached_cpu", "rank", "rank_cpu")}
    caches = [c for e in (kb.embedder, kb.english_embedder) if (c := getattr(e, "_cache", None)) is not None]

    def timed(name: str, fn: Callable[[], object]) -> None:
        t, c = time.perf_counter(), time.thread_time()
        fn()
        out[name].append((time.perf_counter() - t) * 1000)
        out[f"{name}_cpu"].append((time.thread_time() - c) * 1000)

    for q, qv in zip(queries, qvs, strict=True):
        for cache in caches:
            cache.clear()  # measure real encoding, not the repeat-query cache
        timed("cold", lambda q=q: kb.search(q))  # type: ignore[misc]
        timed("cached", lambda q=q: kb.search(q))  # type: ignore[misc]
        timed("rank", lambda q=q, qv=qv: kb.rank(q, query_vector=qv))  # type: ignore[misc]
    return out


def report(label: str, kb: KnowledgeBase, queries: list[str], qvs: np.ndarray) -> None:
    emb = kb._state.embeddings
    base = baseline_topk(emb, qvs)
    lat = latency(kb, queries, qvs)
    b50, b99 = pct(base)
    print(f"{label}: passages={len(emb)} index={type(kb._state.base_index).__name__}, {len(queries)} queries, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  baseline numpy top-k      p50 {b50:7.2f} ms  p99 {b99:7.2f} ms")
    for name, title in (("cold", "search, query encoded"), ("cached", "search, cached query"),
                        ("rank", "rank only (query vector)")):
        p50, p99 = pct(lat[name])
        c50, c99 = pct(lat[f"{name}_cpu"])
        print(f"  {title:<25} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  = {p50 / b50:6.1f}x / {p99 / b99:6.1f}x baseline;"
              f"  CPU p50 {c50:6.2f} ms  p99 {c99:6.2f} ms")


def quality(kb: KnowledgeBase, label: str, paths: list[Path]) -> None:
    for path in paths:
        if path.exists():
            qs = load_queries(path)
            ranks = rank_all(kb, qs)
            print_table(f"{label}: {path}", {m: metrics(kb, qs, ranks[m]) for m in METHOD_ROWS})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kb", type=Path, default=ROOT.parent / "shared" / "kb" / "articles.jsonl")
    ap.add_argument("--dev", type=Path, default=ROOT.parent / "shared" / "kb" / "dev_queries.jsonl")
    ap.add_argument("--holdout", type=Path, default=ROOT / "kb_retrieval" / "eval" / "holdout.jsonl")
    ap.add_argument("--index-dir", type=Path, default=ROOT / "var" / "bench-kb-index")
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--large-passages", type=int, default=2,
                    help="passages kept per synthetic article (first N: the titles); HNSW build time grows with it")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--no-finetune", action="store_true", help="do not fine-tune; use the fine-tuned model if built")
    args, _ = ap.parse_known_args()  # `python -m bench bench_kb` leaves the benchmark's name in argv

    articles = load_articles(args.kb)
    base_model = default_model_location()
    tuned = find_finetuned(args.kb)
    if tuned is None and not args.no_finetune:
        t = time.perf_counter()
        tuned = ensure_finetuned(args.kb, progress=lambda line: print(line, flush=True))
        print(f"fine-tuning: {time.perf_counter() - t:.0f} s wall")
    if tuned is not None:
        marker = json.loads((tuned / MARKER).read_text())
        print(f"fine-tuned model {tuned.name}: {marker['pairs']} pairs, trained in {marker['train_seconds']} s wall"
              f" / {marker.get('train_cpu_seconds', '?')} s CPU")
    models = [("m3e-small", base_model)] + ([("fine-tuned", str(tuned))] if tuned is not None else [])

    kb = None
    config = KBConfig.from_env()
    for label, model in models:
        config = KBConfig.from_env(index_dir=args.index_dir / label, model=model)
        rss0 = rss_mb()
        t = time.perf_counter()
        kb = build_knowledge_base(config, articles)
        print(f"\n{label}: build-or-load {time.perf_counter() - t:.1f} s (incl. model load), "
              f"RSS +{rss_mb() - rss0:.0f} MB")
        if not args.skip_quality:
            quality(kb, label, [args.dev, args.holdout])
    assert kb is not None  # the last one: the model the gateway would use
    t = time.perf_counter()
    kb.load(config.index_dir, expected=articles)  # type: ignore[arg-type]
    print(f"\nsmall: index reload from {config.index_dir}: {(time.perf_counter() - t) * 1000:.0f} ms")
    passages = [p.text for p in kb._state.passages]
    t = time.perf_counter()
    kb.embedder.encode(passages[:256])
    rate = 256 / (time.perf_counter() - t)
    t = time.perf_counter()
    kb.rebuild(articles, kb.vector_cache(), kb.english_vector_cache())
    print(f"small: rebuild without embedding {time.perf_counter() - t:.2f} s; embedding rate {rate:.0f} passages/s "
          f"→ {len(passages) / rate:.0f} s for these {len(passages)} passages")

    queries = [q.q for q in load_queries(args.dev)] if args.dev.exists() else [a.title_zh for a in articles]
    qvs = np.vstack([kb.encode_query(normalize(q)) for q in queries])
    for q in queries[:20]:
        kb.search(q)  # warm up
    print()
    report(f"small ({len(articles)} articles, {models[-1][0]})", kb, queries, qvs)

    if args.large <= 0:
        return
    st = kb._state
    copies = -(-args.large // len(articles))
    n_large = len(articles) * copies
    est_hours = len(st.passages) * copies / rate / 3600
    print(f"\nlarge: {n_large} synthetic articles ({copies} copies); real embedding would take ~{est_hours:.1f} h, "
          "so vectors are perturbed copies (sigma 0.02 per dimension before re-normalising)")
    rng = np.random.default_rng(0)
    embedder, english_embedder = kb.embedder, kb.english_embedder
    del kb
    gc.collect()
    rss0 = rss_mb()
    t = time.perf_counter()
    big_config = replace(config, hnsw_m=16, hnsw_ef_construction=40, hnsw_ef_search=128, candidates=100)
    big = KnowledgeBase(big_config, embedder, english_embedder=english_embedder)
    keep_rows = np.array(
        [i for i, p in enumerate(st.passages)
         if sum(1 for q in st.passages[: i + 1] if q.article_id == p.article_id) <= args.large_passages]
    )
    st_passages = [st.passages[i] for i in keep_rows]
    st_tokens = [st.tokens[i] for i in keep_rows]
    st_emb = st.embeddings[keep_rows]
    en_of_row = {int(r): i for i, r in enumerate(st.en_rows)}
    st_en = (st.en_vectors[[en_of_row[int(r)] for r in keep_rows if int(r) in en_of_row]]
             if st.en_vectors is not None else None)
    en = (np.empty((len(st_en) * copies, st_en.shape[1]), dtype=np.float32) if st_en is not None else None)
    arts = {}
    passages_l: list[Passage] = []
    tokens_l: list[list[str]] = []
    emb = np.empty((len(st_passages) * copies, st_emb.shape[1]), dtype=np.float32)
    for c in range(copies):
        sl = slice(c * len(st_passages), (c + 1) * len(st_passages))
        noise = rng.normal(0, 0.02, size=st_emb.shape).astype(np.float32)
        v = st_emb + noise
        emb[sl] = v / np.linalg.norm(v, axis=1, keepdims=True)
        if st_en is not None and en is not None:
            v = st_en + rng.normal(0, 0.02, size=st_en.shape).astype(np.float32)
            en[c * len(st_en):(c + 1) * len(st_en)] = v / np.linalg.norm(v, axis=1, keepdims=True)
        for a in st.articles.values():
            arts[f"{a.id}-{c}"] = replace(a, id=f"{a.id}-{c}")
        for p, tok in zip(st_passages, st_tokens, strict=True):
            passages_l.append(Passage(f"{p.article_id}-{c}", p.field, p.lang, p.text))
            tokens_l.append([*tok, f"syn{c}"])
    t_data = time.perf_counter() - t
    t = time.perf_counter()
    big._state = big._make_state(arts, passages_l, tokens_l, emb, [True] * len(passages_l), en_vectors=en)
    t_build = time.perf_counter() - t
    print(f"large: {len(passages_l)} passages ({args.large_passages} per article), HNSW M=16 efConstruction=40; "
          f"synthetic data {t_data:.1f} s; index build (HNSW + BM25) {t_build:.1f} s "
          f"({len(passages_l) / t_build:.0f} passages/s); RSS +{rss_mb() - rss0:.0f} MB")
    qv_large = qvs
    for q in queries[:10]:
        big.search(q)
    report(f"large ({n_large} articles)", big, queries, qv_large)


if __name__ == "__main__":
    main()
