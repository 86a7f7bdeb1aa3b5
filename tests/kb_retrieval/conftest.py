"""Shared fixtures for kb_retrieval tests: a deterministic fake embedder (no torch) and small articles."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from kb_retrieval import Article, KBConfig
from kb_retrieval.text import Tokenizer, normalize


class FakeEmbedder:
    """Bag of character bigrams hashed into 64 dimensions: similar texts get similar vectors, no model needed."""

    def __init__(self, fingerprint: str = "fake-v1") -> None:
        self._fp = fingerprint
        self.calls = 0
        self.texts_encoded = 0

    @property
    def dim(self) -> int:
        return 64

    @property
    def fingerprint(self) -> str:
        return self._fp

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            t = normalize(t).replace(" ", "")
            for j in range(max(1, len(t) - 1)):
                h = int(hashlib.md5(t[j : j + 2].encode()).hexdigest(), 16)
                out[i, h % 64] += 1.0 if (h >> 8) % 2 else -1.0
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n > 0 else out[i]
        return out


def make_article(aid: str, dept: str, title_zh: str, body_zh: str, title_en: str = "", body_en: str = "",
                 questions: tuple[str, ...] = (), tags: tuple[str, ...] = ()) -> Article:
    return Article(aid, dept, title_zh, title_en or title_zh, body_zh, body_en or body_zh, tags, questions)


@pytest.fixture
def articles() -> list[Article]:
    return [
        make_article("kb-transport-001", "transport", "公交卡充值", "公交卡可以在地铁站自助机充值，也可以在app充值。",
                     "Topping up a bus card", "You can top up a bus card at metro machines or in the app.",
                     questions=("公交卡怎么充钱",)),
        make_article("kb-transport-002", "transport", "公交卡挂失", "记名公交卡丢失后可以电话挂失，七天后补卡。",
                     "Reporting a lost bus card", "A registered bus card that is lost can be reported by phone."),
        make_article("kb-utilities-001", "utilities", "水费缴纳", "水费可以在app缴纳，逾期会产生滞纳金。",
                     "Paying the water bill", "Pay the water bill in the app; late payment incurs a fee."),
        make_article("kb-household_registration-001", "household_registration", "居住证申领",
                     "在本市居住满半年可以申领居住证，需要身份证和租房合同。",
                     "Applying for a residence permit", "After six months you can apply for a residence permit."),
    ]


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    """One jieba dictionary load for the whole session (about a second each otherwise)."""
    tok = Tokenizer(KBConfig().user_words)
    tok.warm_up()
    return tok
