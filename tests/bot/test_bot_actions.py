"""The custom actions with a fake knowledge-base search (rasa-sdk Tracker objects, no server)."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.actions import build_executor
from bot.actions.handoff import ActionRequestHuman
from bot.actions.kb import ActionAnswerKb, cut_on_sentence
from bot.actions.language import detect_language, language_of_message
from bot.actions.ports import ArticleHit, KbAnswer
from bot.actions.slots import ValidateSlotMappings
from bot.actions.work_orders import ActionCheckWorkOrderStatus

DOMAIN: dict[str, Any] = {
    "slots": {
        "language": {"type": "categorical", "values": ["zh", "en"], "mappings": [{"type": "custom"}]},
        "kb_article_ids": {"type": "list", "mappings": [{"type": "custom"}]},
        "work_order_id": {"type": "text", "mappings": [{"type": "custom"}]},
        "handoff_requested": {"type": "bool", "mappings": [{"type": "custom"}]},
    }
}

PERMIT = ArticleHit(
    id="kb-demo-001",
    title_zh="居住证办理",
    title_en="Applying for a residence permit",
    body_zh="持本市居住登记满半年的人员可以申请居住证。" * 20,
    body_en="You can apply for a residence permit after six months of residence registration. " * 10,
    department="public_security",
    score=0.91,
)
BUS_CARD = ArticleHit(
    "kb-demo-002", "滨江通挂失", "Reporting a lost Binjiang pass", "挂失。", "Report it.", "transport", 0.4
)


class FakeSearch:
    """Returns a fixed answer and records what it was asked."""

    def __init__(self, answer: KbAnswer) -> None:
        self.answer = answer
        self.calls: list[tuple[str, int, str | None]] = []

    async def search(self, query: str, k: int, lang: str | None) -> KbAnswer:
        self.calls.append((query, k, lang))
        return self.answer


class BrokenSearch:
    async def search(self, query: str, k: int, lang: str | None) -> KbAnswer:
        raise RuntimeError("index missing")


def tracker(
    text: str,
    *,
    slots: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    intent: str = "ask_question",
    entities: list[dict[str, Any]] | None = None,
) -> Tracker:
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.9},
        "entities": entities or [],
        "metadata": metadata or {},
    }
    return Tracker(
        sender_id="contact-1",
        slots={"language": None, "kb_article_ids": None, "work_order_id": None, "handoff_requested": None}
        | (slots or {}),
        latest_message=latest,
        events=[{"event": "user", "text": text, "parse_data": latest, "metadata": metadata or {}}],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def test_language_detection() -> None:
    assert detect_language("居住证怎么办") == "zh"
    assert detect_language("身分證掉了") == "zh"
    assert detect_language("how do i get a 居住证") == "zh"
    assert detect_language("how do i get a residence permit") == "en"
    assert detect_language("12345") == "zh"
    assert language_of_message({"text": "hello", "metadata": {"language": "zh-CN"}}) == "zh"
    assert language_of_message({"text": "你好", "metadata": {"language": "fr"}}) == "zh"
    assert language_of_message({"text": "hello", "metadata": None}) == "en"


async def test_validate_slot_mappings_takes_language_from_metadata() -> None:
    action = ValidateSlotMappings()
    events = await action.run(CollectingDispatcher(), tracker("你好", metadata={"language": "en"}), DOMAIN)
    assert events == [{"event": "slot", "timestamp": None, "name": "language", "value": "en"}]


async def test_validate_slot_mappings_detects_language_without_metadata() -> None:
    action = ValidateSlotMappings()
    zh = await action.run(CollectingDispatcher(), tracker("居住证怎么办", slots={"language": "en"}), DOMAIN)
    assert [(e["name"], e["value"]) for e in zh] == [("language", "zh")]
    unchanged = await action.run(CollectingDispatcher(), tracker("hello", slots={"language": "en"}), DOMAIN)
    assert unchanged == []


async def test_answer_kb_answers_with_the_best_article_in_the_slot_language() -> None:
    search = FakeSearch(KbAnswer(hits=[PERMIT, BUS_CARD], answerable=True))
    dispatcher = CollectingDispatcher()
    events = await ActionAnswerKb(search).run(
        dispatcher, tracker("how do i get a residence permit", slots={"language": "en"}), DOMAIN
    )
    assert search.calls == [("how do i get a residence permit", 3, "en")]
    assert events == [{"event": "slot", "timestamp": None, "name": "kb_article_ids", "value": ["kb-demo-001"]}]
    [message] = dispatcher.messages
    title, body = message["text"].split("\n")
    assert title == "Applying for a residence permit"
    assert body.endswith(".") and len(body) <= 300
    assert "kb-demo-001" not in message["text"]  # an internal id is no answer for a citizen


async def test_answer_kb_in_chinese_cuts_on_a_chinese_sentence_end() -> None:
    dispatcher = CollectingDispatcher()
    await ActionAnswerKb(FakeSearch(KbAnswer([PERMIT], True))).run(
        dispatcher, tracker("居住证怎么办理", slots={"language": "zh"}), DOMAIN
    )
    title, body = dispatcher.messages[0]["text"].split("\n")
    assert title == "居住证办理"
    assert body.endswith("。") and len(body) <= 300


async def test_answer_kb_not_answerable_offers_closest_titles_and_a_person() -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionAnswerKb(FakeSearch(KbAnswer([PERMIT, BUS_CARD, PERMIT], False))).run(
        dispatcher, tracker("我家猫丢了", slots={"language": "zh"}), DOMAIN
    )
    assert events == [{"event": "slot", "timestamp": None, "name": "kb_article_ids", "value": []}]
    [message] = dispatcher.messages
    assert "不太确定" in message["text"]
    assert [b["payload"] for b in message["buttons"]] == ["居住证办理", "滨江通挂失", "/request_human"]


async def test_answer_kb_overrules_out_of_scope_only_when_confident() -> None:
    confident = CollectingDispatcher()
    events = await ActionAnswerKb(FakeSearch(KbAnswer([PERMIT], True, confidence=0.95))).run(
        confident, tracker("楼顶漏水想用维修基金", intent="out_of_scope", slots={"language": "zh"}), DOMAIN
    )
    assert events[0]["value"] == ["kb-demo-001"] and confident.messages[0]["text"].startswith("居住证办理")

    doubtful = CollectingDispatcher()
    events = await ActionAnswerKb(FakeSearch(KbAnswer([PERMIT, BUS_CARD], True, confidence=0.3))).run(
        doubtful, tracker("明天会下雨吗", intent="out_of_scope", slots={"language": "zh"}), DOMAIN
    )
    assert events[0]["value"] == []
    [message] = doubtful.messages
    assert "不在政务服务范围" in message["text"]
    # the closest topics stay offered (the NLU may be wrong), and a person
    assert [b["payload"] for b in message["buttons"]] == ["居住证办理", "滨江通挂失", "/request_human"]


async def test_answer_kb_answers_when_the_nlu_is_unsure() -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionAnswerKb(FakeSearch(KbAnswer([PERMIT], True, confidence=0.3))).run(
        dispatcher, tracker("residence permit pls", intent="nlu_fallback", slots={"language": "en"}), DOMAIN
    )
    assert events[0]["value"] == ["kb-demo-001"]


async def test_answer_kb_survives_a_failing_search() -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionAnswerKb(BrokenSearch()).run(dispatcher, tracker("hello?", slots={"language": "en"}), DOMAIN)
    assert events[0]["value"] == []
    assert dispatcher.messages[0]["buttons"][-1]["payload"] == "/request_human"


def test_cut_on_sentence() -> None:
    assert cut_on_sentence("短。") == "短。"
    assert cut_on_sentence("一" * 400).endswith("…")
    assert cut_on_sentence("Dr. Smith works here. " * 30).endswith(".")
    assert len(cut_on_sentence("第一句。" * 100)) <= 300


async def test_request_human_sets_handoff() -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionRequestHuman().run(dispatcher, tracker("talk to a human", slots={"language": "en"}), DOMAIN)
    assert events == [{"event": "slot", "timestamp": None, "name": "handoff_requested", "value": True}]
    assert "person" in dispatcher.messages[0]["text"]


async def test_check_work_order_status_without_a_desk_says_so_and_records_the_number() -> None:
    dispatcher = CollectingDispatcher()
    entity = {"entity": "work_order_number", "value": "BJ-20261123-0007", "start": 17, "end": 33}
    events = await ActionCheckWorkOrderStatus().run(
        dispatcher, tracker("what happened to BJ-20261123-0007", slots={"language": "en"}, entities=[entity]), DOMAIN
    )
    assert events == [{"event": "slot", "timestamp": None, "name": "work_order_id", "value": "BJ-20261123-0007"}]
    assert "can't be looked up" in dispatcher.messages[0]["text"]


async def test_answer_kb_offers_feedback_quick_replies() -> None:
    dispatcher = CollectingDispatcher()
    await ActionAnswerKb(FakeSearch(KbAnswer([PERMIT], True))).run(
        dispatcher, tracker("居住证怎么办理", slots={"language": "zh"}), DOMAIN
    )
    payloads = [b["payload"] for b in dispatcher.messages[0]["buttons"]]
    assert payloads == [
        '/kb_feedback{"helpful":true,"kb_article_id":"kb-demo-001"}',
        '/kb_feedback{"helpful":false,"kb_article_id":"kb-demo-001"}',
    ]


async def test_executor_runs_registered_actions_with_their_dependencies() -> None:
    executor = build_executor(FakeSearch(KbAnswer([PERMIT], True)))
    assert {"action_validate_slot_mappings", "action_answer_kb", "action_request_human",
            "action_check_work_order_status"} <= set(executor.actions)  # fmt: skip
    result = await executor.run(
        {
            "next_action": "action_answer_kb",
            "sender_id": "contact-1",
            "tracker": tracker("居住证怎么办理", slots={"language": "zh"}).current_state(),
            "domain": DOMAIN,
            "version": "3.6.21",
        }
    )
    assert result is not None
    assert result.events[0]["value"] == ["kb-demo-001"]
    assert result.responses[0]["text"].startswith("居住证办理\n")


async def test_a_complaint_told_with_indignation_is_offered_filing_not_a_procedure() -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionAnswerKb(FakeSearch(KbAnswer([PERMIT], True, confidence=1.0))).run(
        dispatcher, tracker("楼下面包店有蟑螂，这样的店凭什么还让它营业？", slots={"language": "zh"}), DOMAIN
    )
    assert events[0]["value"] == []  # no article given as the answer
    [message] = dispatcher.messages
    assert "登记投诉" in message["text"]
    assert message["buttons"][0]["payload"] == "/complain" and message["buttons"][-1]["payload"] == "/request_human"


async def test_a_complaint_phrased_as_a_question_is_filed_as_a_complaint() -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionAnswerKb(FakeSearch(KbAnswer([PERMIT], True, confidence=0.9))).run(
        dispatcher, tracker("想问问幼儿园强制收取兴趣班费用，可以投诉吗？孩子的幼儿园每个月都要交800块",
                            slots={"language": "zh"}), DOMAIN,
    )
    assert [e.get("value") for e in events[:2]] == [[], "complaint"] and events[2]["name"] == "work_order_form"


async def test_a_short_story_of_something_wrong_gets_the_answer_and_the_offer_to_file() -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionAnswerKb(FakeSearch(KbAnswer([PERMIT], True, confidence=0.9))).run(
        dispatcher, tracker("孩子幼儿园强制收兴趣班费用，每个月八百，可以投诉吗", slots={"language": "zh"}), DOMAIN,
    )
    assert events[0]["value"] == ["kb-demo-001"]
    [message] = dispatcher.messages
    assert message["text"].startswith("居住证办理") and "登记投诉" in message["text"]
    assert message["buttons"][0]["payload"] == "/complain"


async def test_a_how_to_question_about_complaining_is_answered_plainly() -> None:
    dispatcher = CollectingDispatcher()
    await ActionAnswerKb(FakeSearch(KbAnswer([PERMIT], True, confidence=0.9))).run(
        dispatcher, tracker("怎么投诉食品安全问题", slots={"language": "zh"}), DOMAIN
    )
    assert [b["payload"] for b in dispatcher.messages[0]["buttons"]][0] != "/complain"


async def test_a_story_of_a_problem_is_filed_whatever_the_nlu_called_it() -> None:
    dispatcher = CollectingDispatcher()
    story = "我真的受够了，和平路公交站旁边那个井盖翘起来半个多月了，昨天晚上我骑电动车直接被颠下来，膝盖到现在还肿着"
    events = await ActionAnswerKb(FakeSearch(KbAnswer([PERMIT], True, confidence=1.0))).run(
        dispatcher, tracker(story, slots={"language": "zh"}), DOMAIN
    )
    assert [e.get("name") for e in events] == ["kb_article_ids", "category", "work_order_form"]
    assert events[1]["value"] == "report" and events[2]["event"] == "followup"
    assert "登记工单" in dispatcher.messages[0]["text"]
