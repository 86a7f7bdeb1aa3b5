"""Fusion of dense and lexical rankings, and the KB file loader."""

import json
from pathlib import Path

import pytest

from kb_retrieval import ArticleLoadError, load_articles
from kb_retrieval.fusion import reciprocal_rank_fusion, weighted_sum


def test_rrf_rewards_agreement() -> None:
    dense = {1: 0.9, 2: 0.8, 3: 0.7}
    lexical = {2: 10.0, 3: 5.0}
    fused = reciprocal_rank_fusion(dense, lexical, k=60)
    assert max(fused, key=lambda a: fused[a]) == 2
    assert fused[1] == pytest.approx(1 / 61)


def test_rrf_ignores_zero_lexical_scores() -> None:
    fused = reciprocal_rank_fusion({1: 0.5}, {1: 0.0, 2: 0.0})
    assert set(fused) == {1}


def test_weighted_sum_normalises_and_weights() -> None:
    dense = {1: 0.90, 2: 0.80}
    lexical = {2: 8.0, 3: 4.0}
    only_dense = weighted_sum(dense, lexical, dense_weight=1.0)
    assert max(only_dense, key=lambda a: only_dense[a]) == 1
    only_lex = weighted_sum(dense, lexical, dense_weight=0.0)
    assert only_lex[2] == pytest.approx(1.0) and only_lex[3] == pytest.approx(0.5)
    assert weighted_sum({}, {}) == {}


def test_load_articles_reports_bad_line(tmp_path: Path) -> None:
    good = {"id": "kb-a-001", "department": "a", "title_zh": "标题", "title_en": "t", "body_zh": "正文",
            "body_en": "b", "tags": [], "questions": []}
    p = tmp_path / "kb.jsonl"
    p.write_text(json.dumps(good) + "\n\n{not json}\n", encoding="utf-8")
    with pytest.raises(ArticleLoadError) as exc:
        load_articles(p)
    assert exc.value.line == 3 and "kb.jsonl:3" in str(exc.value)
    p.write_text(json.dumps(good) + "\n" + json.dumps({**good, "title_zh": 1}) + "\n", encoding="utf-8")
    with pytest.raises(ArticleLoadError, match=":2: missing"):
        load_articles(p)


def test_demo_kb_loads() -> None:
    demo = Path(__file__).resolve().parents[2] / "kb" / "demo_articles.jsonl"
    arts = load_articles(demo)
    assert len(arts) == 24
    assert len({a.department for a in arts}) >= 10
    assert all(4 <= len(a.questions) <= 6 for a in arts)
    assert any("居住证" in a.title_zh for a in arts)
