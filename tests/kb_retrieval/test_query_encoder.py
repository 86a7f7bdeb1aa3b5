"""The int8 ONNX query encoder: faithful to the full-precision model, exported once, skipped for other shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kb_retrieval.embedding import default_model_location, resolve_english_model
from kb_retrieval.query_encoder import load_or_export
from kb_retrieval.text import normalize

QUERIES = [
    "身分證掉了怎麼辦", "公交卡丢了能退钱吗", "电费咋交", "newborn 上户口需要带什么材料",
    "my kid needs a school place near Jiangnan road", "how do I top up my bus card without NFC",
]


def _models() -> list[tuple[str, bool]]:
    """(model, whether an int8 copy must be possible): m3e-small's per-tensor int8 stays at cosine ≥ 0.99 with
    every ONNX Runtime seen; all-MiniLM-L6-v2 needs per-channel weights, which torch 2.13's exported graphs no longer
    quantize faithfully, so it may keep torch."""
    out = []
    try:
        out.append((default_model_location(), True))
    except RuntimeError:
        pass
    english = resolve_english_model("auto")
    if english:
        out.append((english, False))
    return out


@pytest.fixture(scope="module", params=_models() or [pytest.param(None, marks=pytest.mark.skip("no model"))])
def model(request: pytest.FixtureRequest) -> Any:
    from sentence_transformers import SentenceTransformer

    path, required = request.param
    loaded = SentenceTransformer(path, device="cpu")
    loaded.int8_required = required
    return loaded


def test_int8_query_vectors_stay_close_to_full_precision(model: Any, tmp_path: Path) -> None:
    encoder = load_or_export(model, "test-model", tmp_path)
    if encoder is None:  # no int8 copy was faithful: the caller keeps the torch model; only that verdict is kept
        assert not model.int8_required
        assert [p.suffix for p in tmp_path.iterdir()] == [".unfaithful"]
        assert load_or_export(model, "test-model", tmp_path) is None  # and the next start does not try again
        return
    texts = [normalize(q) for q in QUERIES]
    full = model.encode(texts, normalize_embeddings=True)
    for i, text in enumerate(texts):
        vec = encoder.encode(text)
        assert vec.dtype == np.float32 and vec.shape == full[i].shape
        assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-3
        assert float(vec @ full[i]) > 0.98, text


def test_exported_once_and_reused(model: Any, tmp_path: Path) -> None:
    if load_or_export(model, "fp", tmp_path) is None:
        assert not model.int8_required and [p.suffix for p in tmp_path.iterdir()] == [".unfaithful"]
        return
    (exported,) = tmp_path.glob("fp-*.onnx")
    stamp = exported.stat().st_mtime_ns
    assert load_or_export(model, "fp", tmp_path) is not None
    assert exported.stat().st_mtime_ns == stamp
    assert list(tmp_path.iterdir()) == [exported]  # no temporary leftovers


# Stand-ins named like sentence-transformers' modules: the export decision reads only the names and the pooling mode.
class Transformer:
    pass


class Pooling:
    def __init__(self, mode: str) -> None:
        self.mode = mode

    def get_config_dict(self) -> dict[str, Any]:
        return {"pooling_mode": self.mode}


class Dense:
    pass


def test_models_onnx_cannot_reproduce_keep_torch(tmp_path: Path) -> None:
    assert load_or_export([Transformer(), Pooling("cls")], "a", tmp_path) is None
    assert load_or_export([Transformer(), Pooling("mean"), Dense()], "b", tmp_path) is None
    assert not list(tmp_path.iterdir())


def test_a_stale_or_broken_copy_on_disk_is_made_again(tmp_path: Path) -> None:
    """A file an earlier ONNX Runtime wrote, or one cut short, is not used as it is: it is checked and replaced."""
    from sentence_transformers import SentenceTransformer

    from kb_retrieval.query_encoder import EXPORT_VERSION, fidelity

    m3e = SentenceTransformer(default_model_location(), device="cpu")
    planted = tmp_path / f"m3e-v{EXPORT_VERSION}.int8.onnx"
    planted.write_bytes(b"\x08\x07not a whole onnx model")
    encoder = load_or_export(m3e, "m3e", tmp_path)
    assert encoder is not None and fidelity(encoder, m3e) >= 0.98
    assert planted.stat().st_size > 1_000_000
