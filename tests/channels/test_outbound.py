"""Rendering helpers: numbered lists and replies back, images as links, sentence splitting, SMS segments."""

from __future__ import annotations

import pytest

from channels.sms.segments import sms_segments
from gateway.message import Button, OutboundMessage
from gateway.rendering import match_reply, numbered_list, plain_text, split_text

BUTTONS = (Button("办理居住证", "/ask_residence_permit"), Button("Street light", "/report_streetlight"))


def test_numbered_list_and_replies_map_back() -> None:
    assert numbered_list(BUTTONS, "en") == "Reply with a number:\n1. 办理居住证\n2. Street light"
    for reply in ("2", "２", " 2. ", "二", "②", "第2个", "street light", "Street Light!"):
        assert match_reply(reply, BUTTONS) == "/report_streetlight", reply
    for reply in ("1", "一", "办理居住证"):
        assert match_reply(reply, BUTTONS) == "/ask_residence_permit"
    for reply in ("3", "0", "12", "路灯坏了", ""):
        assert match_reply(reply, BUTTONS) is None
    assert match_reply("1", ()) is None


def test_plain_text_downgrades_what_the_channel_cannot_show() -> None:
    out = OutboundMessage(text="请看", buttons=BUTTONS, image="https://x.example/a.png")
    assert plain_text(out, "zh") == "请看\n请回复序号：\n1. 办理居住证\n2. Street light\n图片: https://x.example/a.png"
    assert plain_text(out, "zh", buttons=True, images=True) == "请看"


@pytest.mark.parametrize("text", [
    "您好。" * 100,
    "Please bring your ID card. Then go to the office! " * 40,
    "😀" * 300,
    "没有标点的长句子" * 50,
])
def test_split_on_sentences_within_the_limit(text: str) -> None:
    parts = split_text(text, 67)
    assert all(len(p) <= 67 for p in parts)
    assert "".join(parts).replace(" ", "") == text.replace(" ", "")
    if "。" in text:
        assert all(p.endswith("。") for p in parts)


def test_sms_segments_gsm7_and_ucs2() -> None:
    assert sms_segments("a" * 160) == sms_segments("a" * 160).__class__("GSM-7", 160, 1)
    assert sms_segments("a" * 161).segments == 2
    assert sms_segments("€" * 80).units == 160  # extension characters take two septets
    assert sms_segments("€" * 80).segments == 1 and sms_segments("€" * 81).segments == 2
    assert sms_segments("路" * 70).segments == 1 and sms_segments("路" * 71).segments == 2
    assert sms_segments("路" * 134).segments == 2 and sms_segments("路" * 135).segments == 3
    # 67 units per part: 33 emoji (66 units) fit; the 34th pair cannot be cut, it opens the next segment.
    assert sms_segments("😀" * 35).segments == 1 and sms_segments("😀" * 35).units == 70
    assert sms_segments("😀" * 67).segments == 3  # 33 pairs (66 units) per part: 33 + 33 + 1
    # 306 septets would be 2 full parts, but the escape pair is not split across parts: 152, 2 + 151, 1.
    assert sms_segments("a" * 152 + "€" + "a" * 152).segments == 3


def test_split_by_segments_never_cuts_a_character() -> None:
    text = "😀路灯。" * 200
    parts = split_text(text, 10, lambda t: sms_segments(t).segments)
    assert "".join(parts) == text
    assert all(sms_segments(p).segments <= 10 for p in parts)
    assert all(not ("\ud800" <= p[-1] <= "\udfff") for p in parts)
