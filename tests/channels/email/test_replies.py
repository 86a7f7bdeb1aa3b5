"""The reply corpus (tests/channels/email/replies/): replies as real clients format them — Outlook (en, zh-CN, on the
web, iOS, Mac), Gmail (en, zh-CN), QQ Mail and Foxmail, 163 and NetEase Mail Master, iPhone, Huawei, K-9, Thunderbird,
Mutt and Apple Mail — top-posted above the history, bottom-posted below a quote, and interleaved (answers between the
quoted lines), with signatures ("-- ", "发自我的iPhone", "Sent from my iPhone", "发自网易邮箱大师"), plus two plain
messages that say "wrote:" / "写道：" in the citizen's own words. expected.json gives, for each .eml, its client, how
it replies ("top", "bottom", "interleaved", "none") and the exact text `parse_mail` must find: every line the citizen
wrote, in order, and nothing of the quoted history or the signature."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channels.email.parse import QUOTE_MARK, parse_mail, strip_quoted

REPLIES = Path(__file__).resolve().parent / "replies"
EXPECTED: dict[str, dict[str, str]] = json.loads((REPLIES / "expected.json").read_text(encoding="utf-8"))


def test_every_reply_has_its_expected_text() -> None:
    assert {p.name for p in REPLIES.glob("*.eml")} == set(EXPECTED)
    assert len(EXPECTED) >= 20
    assert {case["style"] for case in EXPECTED.values()} == {"top", "bottom", "interleaved", "none"}


@pytest.mark.parametrize(("name", "text"), [(name, case["text"]) for name, case in sorted(EXPECTED.items())],
                         ids=sorted(EXPECTED))
def test_reply(name: str, text: str) -> None:
    mail = parse_mail((REPLIES / name).read_bytes(), ("service@binjiang.example",))
    assert mail.text == text
    assert mail.machine is None  # a person's reply, to be answered
    assert "\ufffd" not in mail.text


@pytest.mark.parametrize(("text", "new"), [
    # Every answer between quoted lines, in order; the attribution goes with its quote.
    ("在 2026/12/1 10:00, 滨江市民服务 写道:\n> 1. 地址？\n江虹路 300 号\n> 2. 电话？\n13800138000",
     "江虹路 300 号\n13800138000"),
    # A quote that carries its own quoted Outlook history does not hide what is written below it.
    ("On 12/2/26 9:30, Li Lei wrote:\n> ok\n> -----Original Message-----\n> From: a\n> Sent: b\n> To: c\n\nbelow",
     "below"),
    # Gmail wraps a long attribution, also inside a Chinese one.
    ("好的\n\n滨江市民服务 <service@binjiang.example> 于2026年12月1日周二\n10:00写道：\n\n> 您好\n", "好的"),
    # A signature ends its own stretch of text, not the answers after the next quote.
    ("答案一\n\n发自我的iPhone\n\n> 问题二\n\n答案二", "答案一\n\n答案二"),
    ("> q\nanswer\n-- \nTom\n> q2\nsecond answer", "answer\nsecond answer"),
    # History that is not quoted line by line: everything from where it starts.
    ("收到\n\n在 2026年12月1日 10:00，张三 <a@b.cn> 写道：\n原来的内容\n", "收到"),
    ("ok\n---- 回复的原邮件 ----\n| 发件人 | a<a@b.cn> |\n| 日期 | 2026年12月01日 |\nold", "ok"),
    ("ok\n------------------ Original ------------------\nFrom: a\nDate: b\nTo: c\nold", "ok"),
    # A quote container (gmail_quote, divRplyFwdMsg …) is history unless a quote follows it.
    (f"new\n{QUOTE_MARK}\nFrom: a\nSent: b\nTo: c\n\nold", "new"),
    (f"{QUOTE_MARK}\nOn 12/1/26, A <a@b.cn> wrote:\n{QUOTE_MARK}\n> q\nbelow", "below"),
    # The citizen's own words stay, even with "From:" or "写道" in them.
    ("请问怎么坐车？\nFrom: 滨江站\nTo: 西兴路\n谢谢", "请问怎么坐车？\nFrom: 滨江站\nTo: 西兴路\n谢谢"),
    ("他在信里写道：\n“要补材料”\n是真的吗？", "他在信里写道：\n“要补材料”\n是真的吗？"),
])
def test_strip_quoted(text: str, new: str) -> None:
    assert strip_quoted(text) == new
