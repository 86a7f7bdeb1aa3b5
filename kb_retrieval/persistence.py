"""Saving an index state to a directory and loading it back, and telling when a saved index is stale.

A saved index is tied to its format, the models, the indexing parameters and the articles (`params_fingerprint`,
`article_hash`); loading one that was saved with others raises `StaleIndexError`. `saved_vectors` salvages the
passage vectors of a stale index built with the same model, so a rebuild re-embeds only changed passages.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np

from gateway.clock import iso, utc_now
from kb_retrieval.articles import Article
from kb_retrieval.config import KBConfig
from kb_retrieval.index_state import IndexState, build_state, tune_hnsw
from kb_retrieval.passages import Passage
from kb_retrieval.text import TOKENIZER_VERSION

FORMAT_VERSION = 1


class StaleIndexError(RuntimeError):
    """A saved index does not match the current articles, model or indexing parameters."""


def params_fingerprint(config: KBConfig, model_fingerprint: str, english_fingerprint: str | None) -> str:
    """Identifies the format, the models and the indexing parameters (everything but the articles)."""
    c = config
    raw = (f"{FORMAT_VERSION}|{model_fingerprint}|{c.zh_chunk_chars}|{c.en_chunk_words}|{c.user_words}"
           f"|t{TOKENIZER_VERSION}|en:{'-' if english_fingerprint is None else english_fingerprint}")
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def article_hash(articles: Iterable[Article]) -> str:
    """Identifies a set of articles (their whole content), whatever their order."""
    h = hashlib.sha256()
    for a in sorted(articles, key=lambda a: a.id):
        h.update(json.dumps(a.to_dict(), ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()[:24]


def save_state(
    st: IndexState, directory: Path, params: str, model_fingerprint: str, english_fingerprint: str | None
) -> None:
    """Write the state (articles, passages, vectors, FAISS base index) and its manifest to a directory."""
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
        "params": params,
        "articles": article_hash(st.articles.values()),
        "model": model_fingerprint,
        "english_model": english_fingerprint,
        "n_base": st.n_base,
        "saved_at": iso(utc_now()),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    # Why manifest last: a reader that sees the new manifest also sees the files it describes.
    for f in sorted(tmp.iterdir(), key=lambda f: f.name == "manifest.json"):
        f.replace(directory / f.name)
    tmp.rmdir()


def load_state(
    directory: Path,
    config: KBConfig,
    dim: int,
    english_dim: int | None,
    params: str,
    expected: Iterable[Article] | None = None,
) -> IndexState:
    """The state saved in a directory. Raises StaleIndexError if it was saved with other parameters (or, when
    `expected` articles are given, other articles), FileNotFoundError if there is none. dim, english_dim: as for
    `build_state`."""
    manifest = json.loads((directory / "manifest.json").read_text())
    if manifest.get("format") != FORMAT_VERSION or manifest.get("params") != params:
        raise StaleIndexError("index built with another model or other indexing parameters")
    if expected is not None and manifest.get("articles") != article_hash(expected):
        raise StaleIndexError("articles changed since the index was saved")
    arts = [Article.from_dict(json.loads(line)) for line in (directory / "articles.jsonl").open(encoding="utf-8")]
    passages, tokens = _read_passages(directory)
    emb = np.load(directory / "embeddings.npy")
    alive = np.load(directory / "alive.npy")
    english = np.load(directory / "english.npy") if english_dim is not None else None
    base = faiss.read_index(str(directory / "base.faiss"))
    if isinstance(base, faiss.IndexHNSW):
        tune_hnsw(base, config)
    return build_state(
        config, dim, english_dim, {a.id: a for a in arts}, passages, tokens, emb, alive, base_index=base,
        n_base=int(manifest["n_base"]), en_vectors=english,
    )


def saved_vectors(directory: Path, model_fingerprint: str, english: bool = False) -> dict[str, np.ndarray] | None:
    """Passage text → vector from a saved index built with this model (whatever else changed), else None.
    english: the English model's vectors (of the English passages) instead of the main model's."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        if manifest.get("english_model" if english else "model") != model_fingerprint:
            return None
        emb = np.load(directory / ("english.npy" if english else "embeddings.npy"))
        passages, _ = _read_passages(directory)
    except (OSError, ValueError, IndexError):
        return None
    texts = [p.text for p in passages if not english or p.lang == "en"]
    return dict(zip(texts, emb, strict=False)) if len(texts) == len(emb) else None


def _read_passages(directory: Path) -> tuple[list[Passage], list[list[str]]]:
    passages: list[Passage] = []
    tokens: list[list[str]] = []
    with (directory / "passages.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            aid, fld, lang, text, toks = json.loads(line)
            passages.append(Passage(aid, fld, lang, text))
            tokens.append(toks)
    return passages, tokens
