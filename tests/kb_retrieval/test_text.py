"""Normalisation, language detection, tokenisation and chunking."""

from kb_retrieval import detect_language, normalize
from kb_retrieval.text import Tokenizer, chunk_body


def test_normalize_traditional_to_simplified() -> None:
    assert normalize("身分證到期了要去哪裡換") == "身分证到期了要去哪里换"
    assert normalize("住房公積金") == "住房公积金"


def test_normalize_fullwidth_case_and_whitespace() -> None:
    assert normalize("ＡＢＣ　１２３  Bus\tCard\n") == "abc 123 bus card"
    assert normalize("公交卡？！") == "公交卡?!"


def test_detect_language() -> None:
    assert detect_language("公交卡丢了怎么办") == "zh"
    assert detect_language("how do I top up my bus card") == "en"
    assert detect_language("newborn 上户口需要带什么材料") == "zh"
    assert detect_language("my hukou 户 question about the city services") == "en"


def test_tokenizer_chinese_search_mode_and_english() -> None:
    tok = Tokenizer()
    zh = tok.tokenize(normalize("住房公积金提取"))
    assert "公积金" in zh and "提取" in zh
    assert tok.tokenize("how do i top up my bus cards") == ["top", "up", "bus", "card"]


def test_chunk_short_body_is_one_chunk() -> None:
    assert chunk_body("短句。又一句。", "zh") == ["短句。又一句。"]


def test_chunk_long_zh_body_splits_on_sentences_with_overlap() -> None:
    sentences = [f"这是第{i}句话，内容用于测试分块是否按句子边界切分。" for i in range(12)]
    chunks = chunk_body("".join(sentences), "zh", zh_chars=120)
    assert len(chunks) > 1
    assert all(c.endswith("。") for c in chunks)
    assert all(len(c) <= 120 + len(sentences[0]) for c in chunks)
    # one sentence of overlap between neighbours
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.split("。")[-2] == b.split("。")[0]
    assert "".join(sentences) in "".join(chunks).replace("", "") or all(s in "".join(chunks) for s in sentences)


def test_chunk_en_body_by_words() -> None:
    body = " ".join(f"Sentence number {i} has exactly seven words." for i in range(30))
    chunks = chunk_body(body, "en", en_words=80)
    assert len(chunks) >= 3
    assert all(len(c.split()) <= 80 + 7 for c in chunks)
    assert all(f"number {i} " in " ".join(chunks) for i in range(30))


def test_english_words_are_stemmed_after_stop_words(tokenizer: Tokenizer) -> None:
    tokens = tokenizer.tokenize(normalize("Renewing my permits? Does it cost money"))
    assert tokens == ["renew", "permit", "cost", "money"]
    assert tokenizer.tokenize("applying for a licence") == tokenizer.tokenize("apply for licences")
