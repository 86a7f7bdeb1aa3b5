"""Building a ready knowledge base from settings and articles: load the models and the calibration that fits them,
then reload the saved index when it is current, else build it (re-embedding only changed passages) and save it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import structlog

from kb_retrieval.answerable import Calibration
from kb_retrieval.answerable import load_all as load_calibrations
from kb_retrieval.answerable import pick as pick_calibration
from kb_retrieval.articles import Article
from kb_retrieval.config import KBConfig
from kb_retrieval.embedding import Embedder, SentenceTransformerEmbedder, resolve_english_model, resolve_model
from kb_retrieval.index import KnowledgeBase
from kb_retrieval.persistence import StaleIndexError, saved_vectors
from kb_retrieval.text import Tokenizer

log = structlog.get_logger(__name__)


def build_knowledge_base(
    config: KBConfig,
    articles: Sequence[Article],
    embedder: Embedder | None = None,
    calibration: Calibration | None = None,
    tokenizer: Tokenizer | None = None,
    english_embedder: Embedder | None = None,
) -> KnowledgeBase:
    """Load the saved index from config.index_dir when it is current, else build (re-embedding only passages whose
    text changed) and save it. english_embedder: None loads config.english_model (when set)."""
    if embedder is None:
        embedder = _load_embedder(resolve_model(config.model), config)
    if english_embedder is None and (english_location := resolve_english_model(config.english_model)):
        english_embedder = _load_embedder(english_location, config)
    if calibration is None and config.calibration_path is not None and config.calibration_path.exists():
        family = getattr(embedder, "family", embedder.fingerprint)
        calibration, matched = pick_calibration(load_calibrations(config.calibration_path), family,
                                                embedder.fingerprint)
        if matched == "fallback":
            log.warning("kb.calibration_model_mismatch", calibration=str(config.calibration_path), family=family)
        else:
            log.info("kb.calibration", matched=matched, family=family)
    kb = KnowledgeBase(config, embedder, calibration, tokenizer, english_embedder)
    kb.tokenizer.warm_up()
    cache: dict[str, np.ndarray] | None = None
    english_cache: dict[str, np.ndarray] | None = None
    if config.index_dir is not None and (config.index_dir / "manifest.json").exists():
        try:
            kb.load(config.index_dir, expected=articles)
            log.info("kb.index_loaded", dir=str(config.index_dir), articles=len(articles))
            return kb
        except StaleIndexError as exc:
            log.info("kb.index_stale", reason=str(exc))
            cache = saved_vectors(config.index_dir, embedder.fingerprint)  # same model: reuse unchanged passages
            if english_embedder is not None:
                english_cache = saved_vectors(config.index_dir, english_embedder.fingerprint, english=True)
    kb.rebuild(articles, cache, english_cache)
    if config.index_dir is not None:
        kb.save(config.index_dir)
    return kb


def _load_embedder(location: str, config: KBConfig) -> Embedder:
    return SentenceTransformerEmbedder(location, config.torch_threads, quantize_queries=config.quantize_queries,
                                       query_encoder_dir=config.query_encoder_dir)
