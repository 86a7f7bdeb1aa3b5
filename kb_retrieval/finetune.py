"""Fine-tune the KB's sentence model on the KB's own sample questions (a build step: `make train` runs it).

    python -m kb_retrieval.finetune [--kb KB_PATH] [--root models/kb-embedding] [--fingerprint]

Training pairs are each article's sample `questions` against that article's title + the opening of its body, in
the question's language (normalised like the index does). Nothing else: no dev, tuning or held-out query is read.
The loss is in-batch-negatives cross-entropy (what sentence-transformers calls MultipleNegativesRankingLoss),
written as a small torch loop so no `datasets`/`accelerate` is needed; every batch holds distinct articles, so an
article's other questions are never used as its negatives.

The result is saved in `<root>/<fingerprint>/` where the fingerprint covers the base model, the training pairs
and the recipe: the directory that belongs to a KB file is found again from that file alone (`find_finetuned`),
a changed KB gets a new model, and an unchanged one is skipped. `kb_finetune.json` inside is written last and
marks a finished model. These directories are build artifacts (models/ is git-ignored), never committed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from gateway.clock import iso, utc_now
from kb_retrieval.articles import Article, load_articles
from kb_retrieval.config import PACKAGE_DIR
from kb_retrieval.embedding import FINETUNE_MARKER, default_model_location, model_fingerprint
from kb_retrieval.text import detect_language, normalize

PROJECT_ROOT = PACKAGE_DIR.parent
DEFAULT_ROOT = PROJECT_ROOT / "models" / "kb-embedding"
MARKER = FINETUNE_MARKER
FAMILY_SUFFIX = "+kb-finetune"


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the trained weights besides the base model and the pairs (part of the fingerprint)."""

    version: int = 1
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_share: float = 0.1
    scale: float = 20.0  # cosine similarities × scale are the logits (MNRL's default)
    # Why short documents: the forward/backward pass over them is most of the cost (≈ tokens per step); the
    # title and the first sentence or two name the topic, which is what a question must be pulled towards.
    doc_chars_zh: int = 64
    doc_words_en: int = 40
    max_tokens: int = 96
    seed: int = 0


@dataclass(frozen=True)
class Pair:
    question: str
    document: str
    article_id: str


def training_pairs(articles: Sequence[Article], recipe: Recipe = Recipe()) -> list[Pair]:
    """(question → title + opening of the body) in the question's language, normalised as the index normalises."""
    pairs: list[Pair] = []
    for a in articles:
        if not a.published:
            continue
        for q in a.questions:
            if not q.strip():
                continue
            if detect_language(q) == "en" and (a.title_en or a.body_en):
                words = a.body_en.split()[: recipe.doc_words_en]
                doc = f"{a.title_en}. {' '.join(words)}"
            else:
                doc = f"{a.title_zh}。{a.body_zh[: recipe.doc_chars_zh]}"
            pairs.append(Pair(normalize(q), normalize(doc), a.id))
    return pairs


def fingerprint(base_location: str, pairs: Sequence[Pair], recipe: Recipe = Recipe()) -> str:
    h = hashlib.sha256()
    h.update(model_fingerprint(base_location).encode())
    h.update(json.dumps(asdict(recipe), sort_keys=True).encode())
    for p in pairs:
        h.update(f"{p.article_id}\x1f{p.question}\x1f{p.document}\x1e".encode())
    return h.hexdigest()[:16]


def model_dir(articles: Sequence[Article], base_location: str | None = None, root: Path = DEFAULT_ROOT) -> Path:
    """Where the model fine-tuned for these articles lives (whether or not it exists yet)."""
    base = base_location or default_model_location()
    return root / fingerprint(base, training_pairs(articles))


def is_complete(directory: Path) -> bool:
    return (directory / MARKER).is_file()


def find_finetuned(kb_path: Path, root: Path = DEFAULT_ROOT) -> Path | None:
    """The finished fine-tuned model for this KB file (and the bundled base model), or None."""
    if not kb_path.is_file() or not root.is_dir():
        return None
    try:
        directory = model_dir(load_articles(kb_path), root=root)
    except (RuntimeError, ValueError):
        return None
    return directory if is_complete(directory) else None


def _batches(pairs: Sequence[Pair], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches in which no article appears twice (its other questions would be false negatives)."""
    order = list(range(len(pairs)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    pending = order
    while pending:
        batch: list[int] = []
        seen: set[str] = set()
        rest: list[int] = []
        for i in pending:
            if len(batch) < batch_size and pairs[i].article_id not in seen:
                batch.append(i)
                seen.add(pairs[i].article_id)
            else:
                rest.append(i)
        if len(batch) < 2:
            break  # one article left: no negatives to learn from
        batches.append(batch)
        pending = rest
    return batches


def train(
    pairs: Sequence[Pair],
    base_location: str,
    out_dir: Path,
    recipe: Recipe = Recipe(),
    threads: int = 2,
    progress: Callable[[str], None] = print,
) -> tuple[float, float]:
    """Fine-tune and save into out_dir; returns the (wall, CPU) seconds spent training."""
    import torch
    import torch.nn.functional as F  # noqa: N812
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    model = SentenceTransformer(base_location, device="cpu")
    model.max_seq_length = recipe.max_tokens
    model.train()
    epochs = [_batches(pairs, recipe.batch_size, rng) for _ in range(recipe.epochs)]
    total = sum(len(e) for e in epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.01)
    warmup = max(1, int(recipe.warmup_share * total))

    def lr_at(step: int) -> float:  # linear warm-up, then linear decay (sentence-transformers' WarmupLinear)
        return step / warmup if step < warmup else max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)

    def embed(texts: list[str]) -> torch.Tensor:
        prepare = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6
        features = prepare(texts)
        return F.normalize(model(features)["sentence_embedding"], dim=-1)

    started = time.perf_counter()
    cpu_started = time.process_time()
    step = 0
    running = math.nan
    for epoch, batches in enumerate(epochs, start=1):
        for batch in batches:
            q = embed([pairs[i].question for i in batch])
            d = embed([pairs[i].document for i in batch])
            logits = recipe.scale * q @ d.T
            loss = F.cross_entropy(logits, torch.arange(len(batch)))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            value = float(loss.detach())
            running = value if math.isnan(running) else 0.9 * running + 0.1 * value
            elapsed = time.perf_counter() - started
            if step == 1 or step % 5 == 0 or step == total:
                eta = elapsed / step * (total - step)
                progress(f"  epoch {epoch}/{recipe.epochs} step {step}/{total} loss {running:.3f} "
                         f"elapsed {elapsed:.0f} s, about {eta:.0f} s left")
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    model.eval()
    model.save(str(out_dir))
    return seconds, cpu_seconds


def ensure_finetuned(
    kb_path: Path,
    root: Path = DEFAULT_ROOT,
    base_location: str | None = None,
    recipe: Recipe = Recipe(),
    progress: Callable[[str], None] = print,
    threads: int = 2,
) -> Path | None:
    """Fine-tune for this KB file unless a finished model for it exists; returns its directory (None: no pairs)."""
    base = base_location or default_model_location()
    articles = load_articles(kb_path)
    pairs = training_pairs(articles, recipe)
    if len({p.article_id for p in pairs}) < 2:
        progress(f"kb fine-tuning: {kb_path} has too few sample questions; the base model is used")
        return None
    fp = fingerprint(base, pairs, recipe)
    target = root / fp
    if is_complete(target):
        progress(f"kb fine-tuning: up to date ({target})")
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{fp}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    progress(f"kb fine-tuning: {len(pairs)} question→article pairs from {kb_path} "
             f"({recipe.epochs} epochs, batch {recipe.batch_size}); ~7 CPU-minutes for 1,200 pairs, longer on a busy "
             "machine")
    try:
        seconds, cpu_seconds = train(pairs, base, tmp, recipe, threads=threads, progress=progress)
        marker = {
            "fingerprint": fp,
            "family": f"{Path(base).name}{FAMILY_SUFFIX}-v{recipe.version}",
            "base_model_fingerprint": model_fingerprint(base),
            "kb_path": str(kb_path),
            "pairs": len(pairs),
            "articles": len({p.article_id for p in pairs}),
            "recipe": asdict(recipe),
            "train_seconds": round(seconds, 1),
            "train_cpu_seconds": round(cpu_seconds, 1),
            "threads": threads,
            "finished_at": iso(utc_now()),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2, ensure_ascii=False) + "\n")
        shutil.rmtree(target, ignore_errors=True)  # an unfinished copy (no marker) from an interrupted run
        tmp.replace(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    progress(f"kb fine-tuning: done in {seconds:.0f} s ({cpu_seconds:.0f} s of CPU) → {target}")
    return target


def main() -> None:
    from gateway.settings import GatewaySettings
    from kb_retrieval.settings import KnowledgeBaseSettings

    class FromEnvironment(KnowledgeBaseSettings):
        # KB_PATH and KB_EMBEDDING_MODEL as the gateway reads them: its .env too, where the other variables are not
        # ours to check.
        model_config = GatewaySettings.model_config

    settings = FromEnvironment()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kb", type=Path, default=settings.kb_path)
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--fingerprint", action="store_true", help="only print where the model for this KB lives")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads")
    args = ap.parse_args()
    if settings.kb_embedding_model:
        print("kb fine-tuning: skipped, KB_EMBEDDING_MODEL names the model to use")
        return
    if not args.kb.is_file():
        print(f"kb fine-tuning: skipped, no KB file at {args.kb}")
        return
    if args.fingerprint:
        print(model_dir(load_articles(args.kb), root=args.root))
        return
    ensure_finetuned(args.kb, args.root, progress=lambda line: print(line, flush=True), threads=args.threads)


if __name__ == "__main__":
    main()
