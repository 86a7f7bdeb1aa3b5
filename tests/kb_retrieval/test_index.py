"""The KnowledgeBase with a fake embedder: search, filters, upsert/remove visibility, persistence, threshold."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kb_retrieval import Article, KBConfig, KnowledgeBase, StaleIndexError, build_knowledge_base
from kb_retrieval.answerable import Calibration
from kb_retrieval.signals import FEATURES
from kb_retrieval.text import Tokenizer, normalize

from .conftest import FakeEmbedder, make_article


@pytest.fixture(autouse=True)
def _shared_tokenizer(tokenizer: Tokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    global _TOKENIZER
    _TOKENIZER = tokenizer


_TOKENIZER: Tokenizer | None = None


def _kb(articles: list[Article], emb: FakeEmbedder, **cfg: object) -> KnowledgeBase:
    config = KBConfig(calibration_path=None, **{"english_model": "none", **cfg})  # type: ignore[arg-type]
    return build_knowledge_base(config, articles, embedder=emb, tokenizer=_TOKENIZER)


def test_search_finds_article_without_questions(articles: list[Article], fake_embedder: FakeEmbedder) -> None:
    kb = _kb(articles, fake_embedder)
    r = kb.search("公交卡丢失了 挂失")
    assert r.hits[0].article.id == "kb-transport-002"  # it has no sample questions
    assert r.lang == "zh" and r.took_ms >= 0
    assert kb.search("apply residence permit").hits[0].article.id == "kb-household_registration-001"


def test_department_filter(articles: list[Article], fake_embedder: FakeEmbedder) -> None:
    kb = _kb(articles, fake_embedder)
    r = kb.search("公交卡", department="utilities")
    assert [h.article.department for h in r.hits] == ["utilities"] * len(r.hits)


def test_upsert_and_remove_visible_without_reembedding(articles: list[Article], fake_embedder: FakeEmbedder) -> None:
    kb = _kb(articles, fake_embedder)
    before = fake_embedder.texts_encoded
    new = make_article("kb-environment-001", "environment", "垃圾分类规则", "厨余垃圾要沥干水分，电池属于有害垃圾。",
                       "Waste sorting rules", "Drain kitchen waste; batteries are hazardous waste.")
    kb.upsert(new)
    # only the new article's passages were embedded (titles, bodies, tags)
    assert fake_embedder.texts_encoded - before <= 6
    assert kb.search("电池是什么垃圾").hits[0].article.id == "kb-environment-001"
    assert kb.get("kb-environment-001") == new
    # edit: old text gone, new text found
    kb.upsert(replace(new, body_zh="大件家具需要预约清运。", body_en="Book collection for bulky furniture."))
    assert kb.search("大件家具预约清运").hits[0].article.id == "kb-environment-001"
    # unpublish and remove
    kb.upsert(replace(new, published=False))
    assert all(h.article.id != "kb-environment-001" for h in kb.search("大件家具预约清运").hits)
    assert kb.remove("kb-transport-002") is True and kb.remove("kb-transport-002") is False
    assert all(h.article.id != "kb-transport-002" for h in kb.search("公交卡挂失").hits)
    assert kb.get("kb-transport-002") is None


def test_many_upserts_compact_and_stay_correct(articles: list[Article], fake_embedder: FakeEmbedder) -> None:
    kb = _kb(articles, fake_embedder)
    for i in range(80):
        kb.upsert(make_article(f"kb-x-{i:03d}", "x", f"测试文章{i}号", f"这是第{i}号测试文章的正文。"))
    kb.upsert(replace(articles[0], body_zh="公交卡只能在人民路服务中心充值。"))
    assert kb.search("公交卡 人民路服务中心 充值").hits[0].article.id == "kb-transport-001"
    assert len(kb.articles()) == 84


def test_concurrent_search_during_upserts(articles: list[Article], fake_embedder: FakeEmbedder) -> None:
    kb = _kb(articles, fake_embedder)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                assert kb.search("水费缴纳").hits[0].article.id == "kb-utilities-001"
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(40):
        kb.upsert(make_article(f"kb-y-{i:03d}", "y", f"其他文章{i}", "与水无关的内容。"))
    stop.set()
    for t in threads:
        t.join()
    assert not errors


def test_persistence_round_trip_and_invalidation(
    tmp_path: Path, articles: list[Article], fake_embedder: FakeEmbedder
) -> None:
    kb = _kb(articles, fake_embedder, index_dir=tmp_path)
    assert (tmp_path / "manifest.json").exists()
    expected = [h.article.id for h in kb.search("公交卡挂失").hits]

    emb2 = FakeEmbedder()
    kb2 = _kb(articles, emb2, index_dir=tmp_path)
    assert emb2.texts_encoded == 0  # loaded, nothing re-embedded
    assert [h.article.id for h in kb2.search("公交卡挂失").hits] == expected
    assert kb2.fingerprint() == kb.fingerprint()

    # articles changed: stale, rebuilt, but unchanged passages are reused from the saved vectors
    changed = [*articles[:-1], replace(articles[-1], body_zh="居住证每年签注一次。")]
    emb3 = FakeEmbedder()
    fresh = KnowledgeBase(KBConfig(calibration_path=None), emb3, tokenizer=_TOKENIZER)
    with pytest.raises(StaleIndexError):
        fresh.load(tmp_path, expected=changed)
    kb3 = _kb(changed, emb3, index_dir=tmp_path)
    assert 0 < emb3.texts_encoded <= 2
    assert kb3.search("居住证签注").hits[0].article.id == "kb-household_registration-001"

    # model changed: stale
    other = KnowledgeBase(KBConfig(calibration_path=None), FakeEmbedder("another-model"), tokenizer=_TOKENIZER)
    with pytest.raises(StaleIndexError):
        other.load(tmp_path)


def test_hnsw_chosen_above_flat_limit(articles: list[Article], fake_embedder: FakeEmbedder) -> None:
    import faiss

    kb = _kb(articles, fake_embedder, flat_max_passages=5)
    assert isinstance(kb._state.base_index, faiss.IndexHNSWFlat)
    assert kb.search("水费缴纳").hits[0].article.id == "kb-utilities-001"
    small = _kb(articles, FakeEmbedder())
    assert isinstance(small._state.base_index, faiss.IndexFlatIP)


def _calibration(threshold: float, weights: tuple[float, ...]) -> Calibration:
    n = len(FEATURES)
    return Calibration(FEATURES, (0.0,) * n, (1.0,) * n, weights, 0.0, threshold)


def test_threshold_refuses_and_answers(articles: list[Article]) -> None:
    # weight only on coverage (share of query words known to the index)
    w = tuple(5.0 if f == "coverage" else 0.0 for f in FEATURES)
    kb = build_knowledge_base(
        KBConfig(calibration_path=None, english_model="none"), articles, FakeEmbedder(), _calibration(0.9, w),
        tokenizer=_TOKENIZER
    )
    ok = kb.search("公交卡充值")
    assert ok.answerable and ok.confidence is not None and ok.confidence > 0.9
    refused = kb.search("量子计算机原理")
    assert not refused.answerable and refused.hits  # closest topics still returned for buttons
    assert not kb.search("   ").answerable


def test_calibration_file_round_trip(tmp_path: Path) -> None:
    c = _calibration(0.3, tuple(float(i) for i in range(len(FEATURES))))
    c.save(tmp_path / "c.json")
    assert Calibration.load(tmp_path / "c.json") == c


def test_shipped_calibration_is_valid() -> None:
    from kb_retrieval.config import DEFAULT_CALIBRATION

    c = Calibration.load(DEFAULT_CALIBRATION)
    assert set(c.features) <= set(FEATURES) and 0 < c.threshold < 1
    assert np.isfinite(np.asarray(c.weights)).all()


def test_signals_weigh_rare_words_and_are_exposed(articles: list[Article], fake_embedder: FakeEmbedder) -> None:
    kb = _kb(articles, fake_embedder)
    # "公交卡" is in two articles, "滞纳金" in one: finding the rare word in the top article counts for more
    r = kb.search("水费 滞纳金", k=2)
    assert r.signals is not None and r.hits[0].article.id == "kb-utilities-001"
    assert r.signals.idf_top_coverage == pytest.approx(1.0)
    partial = kb.search("公交卡 量子纠缠").signals
    assert partial is not None and 0 < partial.idf_top_coverage < partial.top_coverage <= 0.5
    named = r.signals.as_dict()
    assert list(named) == list(FEATURES) and named["idf_top_coverage"] == pytest.approx(1.0)


def test_filters_are_computed_once_per_index_state(articles: list[Article], fake_embedder: FakeEmbedder) -> None:
    kb = _kb(articles, fake_embedder)
    kb.search("公交卡", department="transport", lang="zh")
    st = kb._state
    mask = st.masks[("zh", "transport")]
    kb.search("公交卡挂失", department="transport", lang="zh")
    assert st.masks[("zh", "transport")] is mask
    kb.upsert(make_article("kb-transport-009", "transport", "地铁末班车时间", "地铁末班车22:30发车。"))
    assert kb.search("地铁末班车", department="transport", lang="zh").hits[0].article.id == "kb-transport-009"


class SynonymEmbedder(FakeEmbedder):
    """A stand-in English model that knows synonyms the bigram fake does not ("missing" = "lost")."""

    SYNONYMS = {"missing": "lost", "misplaced": "lost", "recharge": "top", "refill": "top"}

    def __init__(self) -> None:
        super().__init__("fake-english-v1")

    @property
    def dim(self) -> int:
        return 1024  # few hash collisions between words

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in normalize(text).replace(".", " ").replace(",", " ").split():
                word = self.SYNONYMS.get(word, word)
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n > 0 else out[i]
        return out


def _kb_with_english(articles: list[Article], english: SynonymEmbedder, **cfg: object) -> KnowledgeBase:
    config = KBConfig(calibration_path=None, **cfg)  # type: ignore[arg-type]
    return build_knowledge_base(config, articles, embedder=FakeEmbedder(), tokenizer=_TOKENIZER,
                                english_embedder=english)


def test_english_model_rescores_english_queries_only(articles: list[Article]) -> None:
    english = SynonymEmbedder()
    kb = _kb_with_english(articles, english, english_weight=1.0, english_dense_weight=1.0)
    plain = _kb(articles, FakeEmbedder())
    query = "my card went missing"
    assert plain.search(query).hits[0].article.id != "kb-transport-002"
    r = kb.search(query)
    assert r.hits[0].article.id == "kb-transport-002"
    assert r.signals is not None and r.signals.english_top is not None and r.signals.english_top > 0
    assert r.signals.as_dict()["english_top"] == round(r.signals.english_top, 4)
    # only English passages carry the English model's vectors; a Chinese query never asks it
    st = kb._state
    assert st.en_vectors is not None and len(st.en_vectors) == sum(p.lang == "en" for p in st.passages)
    calls = english.calls
    zh = kb.search("公交卡丢了")
    assert english.calls == calls and zh.signals is not None and zh.signals.english_top is None
    assert zh.signals.as_dict()["english_top"] is None


def test_english_vectors_follow_edits_compaction_and_persistence(tmp_path: Path, articles: list[Article]) -> None:
    english = SynonymEmbedder()
    kb = _kb_with_english(articles, english, index_dir=tmp_path, english_weight=1.0, english_dense_weight=1.0)
    for i in range(80):  # enough to compact the index
        kb.upsert(make_article(f"kb-x-{i:03d}", "x", f"测试文章{i}号", f"这是第{i}号测试文章的正文。",
                               f"Test article {i}", f"The body of test article {i}."))
    kb.upsert(make_article("kb-z-001", "z", "退卡", "退卡退押金。", "Returning a card",
                           "Misplaced cards are not refunded."))
    kb.remove("kb-x-000")
    st = kb._state
    assert st.en_vectors is not None
    assert len(st.en_vectors) == sum(p.lang == "en" for p in st.passages)
    assert kb.search("lost cards refund").hits[0].article.id == "kb-z-001"
    kb.save(tmp_path)

    reloaded_english = SynonymEmbedder()
    kb2 = _kb_with_english(kb.articles(), reloaded_english, index_dir=tmp_path, english_weight=1.0,
                           english_dense_weight=1.0)
    assert reloaded_english.texts_encoded == 0  # the passages' English vectors were loaded, not re-embedded
    assert kb2.search("lost cards refund").hits[0].article.id == "kb-z-001"
    # another English model makes the saved index stale
    other = KnowledgeBase(KBConfig(calibration_path=None), FakeEmbedder(), tokenizer=_TOKENIZER,
                          english_embedder=FakeEmbedder("other-english"))
    with pytest.raises(StaleIndexError):
        other.load(tmp_path)


def test_code_mixed_queries_are_flagged_for_the_refusal_model(articles: list[Article]) -> None:
    kb = _kb(articles, FakeEmbedder())
    flags = {q: kb.search(q).signals.mixed for q in ("公交卡怎么 top up", "公交卡丢了", "lost bus card")}  # type: ignore[union-attr]
    assert flags == {"公交卡怎么 top up": True, "公交卡丢了": False, "lost bus card": False}
