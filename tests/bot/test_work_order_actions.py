"""The work-order form's actions, the status lookup and the answer feedback, with fake ports (no Rasa, no DB)."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.actions import build_executor
from bot.actions.feedback import ActionKbFeedback
from bot.actions.ports import FiledWorkOrder, KbAnswer, WorkOrderDraft, WorkOrderSummary
from bot.actions.work_order_form import ActionAskWorkOrderConfirmed, ActionFinishWorkOrder, ValidateWorkOrderForm
from bot.actions.work_order_text import find_correction, find_location, find_phone, is_descriptive
from bot.actions.work_orders import ActionCheckWorkOrderStatus

DOMAIN: dict[str, Any] = {"slots": {}, "forms": {"work_order_form": {"required_slots": []}}}
META = {"language": "zh", "channel": "rest", "contact_id": "c-1", "conversation_id": "conv-1"}
FORM_SLOTS = {
    "category": None, "description": None, "location": None, "phone": None, "photo": None,
    "work_order_confirmed": None, "requested_slot": None, "work_order_id": None,
}  # fmt: skip


def tracker(
    text: str,
    intent: str,
    *,
    slots: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    entities: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
) -> Tracker:
    metadata = META if metadata is None else metadata
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.95}, "entities": entities or [],
              "metadata": metadata}  # fmt: skip
    language = "en" if metadata.get("language") == "en" else "zh"
    return Tracker(
        sender_id="conv-1",
        slots={"language": language, **FORM_SLOTS, **(slots or {})},
        latest_message=latest,
        events=[*(events or []), {"event": "user", "text": text, "parse_data": latest, "metadata": metadata}],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def slots_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


class FakeDesk:
    def __init__(self, orders: dict[str, WorkOrderSummary] | None = None, duplicate: bool = False) -> None:
        self.filed: list[WorkOrderDraft] = []
        self.orders = orders or {}
        self.duplicate = duplicate
        self.ratings: list[tuple[str, int]] = []

    async def file(self, draft: WorkOrderDraft) -> FiledWorkOrder:
        self.filed.append(draft)
        return FiledWorkOrder("BJ-20261123-0007", "2026-11-30", "city_lighting", "市政照明所", "Street Lighting",
                              self.duplicate)  # fmt: skip

    async def summary(self, number: str) -> WorkOrderSummary | None:
        return self.orders.get(number)

    async def latest_for_contact(self, contact_id: str) -> WorkOrderSummary | None:
        mine = [o for o in self.orders.values() if o.contact_id == contact_id]
        return mine[-1] if mine else None

    async def rate(self, number: str, contact_id: str, score: int) -> bool:
        order = self.orders.get(number)
        if order is None or order.contact_id != contact_id:
            return False
        self.ratings.append((number, score))
        return True


ORDER = WorkOrderSummary(
    "BJ-20261123-0007", "c-1", "in_progress", "city_lighting", "市政照明所", "Street Lighting", "2026-11-30",
    "status", "crew on site", "2026-11-23 15:10",
)


# ---- reading fields out of text -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("解放路和人民路路口的路灯坏了三天了", "解放路和人民路路口"),
        ("pothole outside 120 Jiefang Road", "120 Jiefang Road"),
        ("人民路188号阳光小区门口垃圾没人收", "人民路188号阳光小区门口"),
        ("路灯坏了 在滨江大道", "滨江大道"),
        ("马路上有坑", None),
        ("The lamp outside No. 5 Heping Road has been dark for days", "No. 5 Heping Road"),
        ("behind Building 3 of Lakeside Court on Xinhua Road the bins overflow",
         "Building 3 of Lakeside Court on Xinhua Road"),
        ("新华路湖畔小区3号楼后面的垃圾桶满了", "新华路湖畔小区3号楼后面"),
        ("我去年十月在解放路那边买的房子漏水", "解放路那边"),
        ("长江路地铁站B口出来那个位置有个井盖", "长江路地铁站B口"),
        ("the north gate of Riverside Park has a broken light", "the north gate of Riverside Park"),
        ("物业说是外面线路的问题", None),
        ("建议在人民路口加个红绿灯", "人民路口"),
        ("the street light is broken", None),
    ],
)
def test_find_location_keeps_the_place_as_written(text: str, place: str | None) -> None:
    assert find_location(text) == place


def test_phone_numbers_are_validated_and_normalised() -> None:
    assert find_phone("我的电话 138 1234 5678") == "13812345678"
    assert find_phone("+86 139-1234-5678") == "13912345678"
    assert find_phone("0571 87654321") == "0571-87654321"
    assert find_phone("12812345678") is None
    assert find_phone("12345") is None


def test_corrections_and_descriptive_messages() -> None:
    fix = find_correction("地址改成解放路100号")
    assert fix is not None and (fix.field, fix.value) == ("location", "解放路100号")
    fix = find_correction("change the phone number to 13912345678")
    assert fix is not None and (fix.field, fix.value) == ("phone", "13912345678")
    assert find_correction("是") is None
    assert not is_descriptive("我要投诉") and not is_descriptive("I want to report a problem")
    assert is_descriptive("路灯坏了") and is_descriptive("the street light is broken")


# ---- the form --------------------------------------------------------------------------------------------------------


async def test_activation_prefills_from_the_message_and_the_channel() -> None:
    attachment = {"kind": "image", "ref": "media/abc.jpg", "mime": "image/jpeg"}
    t = tracker("解放路和人民路路口的路灯坏了三天了", "report_problem",
                metadata={**META, "phone": "13812345678", "attachments": [attachment]})  # fmt: skip
    slots = slots_of(await ValidateWorkOrderForm().run(CollectingDispatcher(), t, DOMAIN))
    assert slots == {
        "category": "report", "description": "解放路和人民路路口的路灯坏了三天了", "location": "解放路和人民路路口",
        "phone": "13812345678", "photo": ["media/abc.jpg"],
    }  # fmt: skip


async def test_activation_with_a_bare_complaint_asks_for_everything() -> None:
    slots = slots_of(await ValidateWorkOrderForm().run(CollectingDispatcher(), tracker("我要投诉", "complain"), DOMAIN))
    assert slots == {"category": "complaint"}


async def test_requested_location_is_the_whole_text() -> None:
    text = "江南路120号阳光小区3栋楼下靠近北门那个井盖"
    t = tracker(text, "report_problem", slots={"requested_slot": "location", "description": "井盖没了"})
    assert slots_of(await ValidateWorkOrderForm().run(CollectingDispatcher(), t, DOMAIN)) == {"location": text}


async def test_invalid_phone_is_asked_again() -> None:
    dispatcher = CollectingDispatcher()
    t = tracker("12345", "nlu_fallback", slots={"requested_slot": "phone"})
    assert slots_of(await ValidateWorkOrderForm().run(dispatcher, t, DOMAIN)) == {"phone": None}
    assert "号码好像不对" in dispatcher.messages[0]["text"]


async def test_correction_at_the_confirmation_reads_the_summary_again() -> None:
    t = tracker("地址改成解放路100号", "correct_field",
                slots={"requested_slot": "work_order_confirmed", "location": "人民路", "description": "x"})  # fmt: skip
    slots = slots_of(await ValidateWorkOrderForm().run(CollectingDispatcher(), t, DOMAIN))
    assert slots == {"location": "解放路100号", "work_order_confirmed": None}


async def test_affirm_confirms_and_deny_cancels_at_any_step() -> None:
    t = tracker("是", "affirm", slots={"requested_slot": "work_order_confirmed"})
    assert slots_of(await ValidateWorkOrderForm().run(CollectingDispatcher(), t, DOMAIN)) == {
        "work_order_confirmed": True
    }
    t = tracker("算了", "deny", slots={"requested_slot": "location"})
    assert slots_of(await ValidateWorkOrderForm().run(CollectingDispatcher(), t, DOMAIN)) == {
        "work_order_confirmed": False, "requested_slot": None,
    }  # fmt: skip


@pytest.mark.parametrize(("requested", "text", "intent"), [
    ("location", "No. 12 Heping Road, Xihu District", "deny"),
    ("location", "不是在小区里面，是在外面马路上", "deny"),
    ("location", "the stop by the north gate of the park, line 5", "goodbye"),
    ("location", "没有门牌号，就在学校旁边的拐角", "deny"),
    ("description", "不是路灯的问题，是整条路都没电", "deny"),
])
async def test_an_answer_the_nlu_misread_is_still_the_answer(requested: str, text: str, intent: str) -> None:
    t = tracker(text, intent, slots={"requested_slot": requested})
    assert slots_of(await ValidateWorkOrderForm().run(CollectingDispatcher(), t, DOMAIN)) == {requested: text}


@pytest.mark.parametrize(("requested", "text", "intent"), [
    ("location", "算了不报了", "deny"), ("description", "cancel, forget it", "deny"),
    ("phone", "不用登记了", "affirm"), ("work_order_confirmed", "不", "deny"),
    ("work_order_confirmed", "no", "deny"), ("work_order_confirmed", "/deny", "deny"),
])
async def test_only_a_cancel_in_words_stops_the_form(requested: str, text: str, intent: str) -> None:
    t = tracker(text, intent, slots={"requested_slot": requested})
    assert slots_of(await ValidateWorkOrderForm().run(CollectingDispatcher(), t, DOMAIN)) == {
        "work_order_confirmed": False, "requested_slot": None,
    }  # fmt: skip


async def test_request_for_a_person_leaves_the_form_to_the_rules() -> None:
    t = tracker("转人工", "request_human", slots={"requested_slot": "location"})
    events = await ValidateWorkOrderForm().run(CollectingDispatcher(), t, DOMAIN)
    assert [e["event"] for e in events] == ["action_execution_rejected"]


async def test_summary_is_read_back_in_english() -> None:
    dispatcher = CollectingDispatcher()
    slots = {"category": "report", "description": "pothole", "location": "120 Jiefang Road", "phone": "13812345678"}
    await ActionAskWorkOrderConfirmed().run(dispatcher, tracker("x", "affirm", slots=slots,
                                                                metadata={**META, "language": "en"}), DOMAIN)
    text = dispatcher.messages[0]["text"]
    assert "120 Jiefang Road" in text and "13812345678" in text and "cancel" in text
    assert [b["payload"] for b in dispatcher.messages[0]["buttons"]] == ["/affirm", "/deny"]


async def test_finish_files_the_confirmed_order_and_clears_the_form() -> None:
    desk = FakeDesk()
    dispatcher = CollectingDispatcher()
    slots = {"category": "report", "description": "路灯坏了", "location": "解放路", "phone": "13812345678",
             "photo": ["media/a.jpg"], "work_order_confirmed": True}  # fmt: skip
    trigger = {"event": "user", "text": "路灯坏了", "parse_data": {"intent": {"name": "report_problem"}}}
    events = await ActionFinishWorkOrder(desk).run(
        dispatcher, tracker("是", "affirm", slots=slots, events=[trigger]), DOMAIN
    )
    [draft] = desk.filed
    assert (draft.category, draft.location, draft.phone, draft.contact_id, draft.intent, draft.photos) == (
        "report", "解放路", "13812345678", "c-1", "report_problem", ["media/a.jpg"]
    )
    assert slots_of(events)["work_order_id"] == "BJ-20261123-0007"
    assert slots_of(events)["description"] is None
    assert "BJ-20261123-0007" in dispatcher.messages[0]["text"] and "2026-11-30" in dispatcher.messages[0]["text"]


async def test_finish_names_the_open_order_a_repeat_was_linked_to() -> None:
    dispatcher = CollectingDispatcher()
    slots = {"description": "路灯坏了", "work_order_confirmed": True}
    await ActionFinishWorkOrder(FakeDesk(duplicate=True)).run(dispatcher, tracker("是", "affirm", slots=slots), DOMAIN)
    assert "已有工单 BJ-20261123-0007" in dispatcher.messages[0]["text"]


async def test_finish_after_cancel_files_nothing() -> None:
    desk = FakeDesk()
    dispatcher = CollectingDispatcher()
    events = await ActionFinishWorkOrder(desk).run(
        dispatcher, tracker("算了", "deny", slots={"work_order_confirmed": False}), DOMAIN
    )
    assert desk.filed == [] and "已取消" in dispatcher.messages[0]["text"]
    assert "work_order_id" not in slots_of(events)


# ---- status ---------------------------------------------------------------------------------------------------------


async def test_status_is_told_to_the_filer_only() -> None:
    desk = FakeDesk({ORDER.number: ORDER})
    action = ActionCheckWorkOrderStatus(desk)
    mine = CollectingDispatcher()
    events = await action.run(mine, tracker("BJ-20261123-0007 怎么样了", "check_work_order_status"), DOMAIN)
    assert slots_of(events) == {"work_order_id": "BJ-20261123-0007"}
    assert "正在处理" in mine.messages[0]["text"] and "市政照明所" in mine.messages[0]["text"]

    stranger, missing = CollectingDispatcher(), CollectingDispatcher()
    other = {**META, "contact_id": "c-2"}
    assert await action.run(stranger, tracker("BJ-20261123-0007 怎么样了", "check_work_order_status",
                                              metadata=other), DOMAIN) == []  # fmt: skip
    await action.run(missing, tracker("BJ-20261123-0099 怎么样了", "check_work_order_status", metadata=other), DOMAIN)
    refusal = stranger.messages[0]["text"]
    assert "市政照明所" not in refusal and "处理" not in refusal.split("。")[0]
    assert refusal.replace("0007", "0099") == missing.messages[0]["text"], "a stranger learns nothing"


async def test_my_latest_report() -> None:
    dispatcher = CollectingDispatcher()
    t = tracker("what about my latest report", "check_work_order_status", metadata={**META, "language": "en"})
    events = await ActionCheckWorkOrderStatus(FakeDesk({ORDER.number: ORDER})).run(dispatcher, t, DOMAIN)
    assert slots_of(events) == {"work_order_id": "BJ-20261123-0007"}
    assert "in progress" in dispatcher.messages[0]["text"] and "crew on site" in dispatcher.messages[0]["text"]


# ---- feedback -------------------------------------------------------------------------------------------------------


class FakeFeedback:
    def __init__(self) -> None:
        self.votes: list[tuple[str, bool, str | None, str | None]] = []

    async def record(self, article_id: str, helpful: bool, conversation_id: str | None, query: str | None) -> None:
        self.votes.append((article_id, helpful, conversation_id, query))


async def test_feedback_is_stored_with_the_question_and_thanked() -> None:
    feedback = FakeFeedback()
    dispatcher = CollectingDispatcher()
    question = {"event": "user", "text": "居住证怎么办", "parse_data": {"intent": {"name": "ask_question"}}}
    entities: list[dict[str, Any]] = [
        {"entity": "helpful", "value": False}, {"entity": "kb_article_id", "value": "kb-demo-001"}
    ]
    await ActionKbFeedback(feedback).run(
        dispatcher,
        tracker('/kb_feedback{"helpful":false,"kb_article_id":"kb-demo-001"}', "kb_feedback", entities=entities,
                events=[question]),
        DOMAIN,
    )  # fmt: skip
    assert feedback.votes == [("kb-demo-001", False, "conv-1", "居住证怎么办")]
    assert "谢谢" in dispatcher.messages[0]["text"]


def test_executor_registers_the_new_actions() -> None:
    executor = build_executor(FakeSearchNone(), work_orders=FakeDesk(), feedback=FakeFeedback())
    assert {"validate_work_order_form", "action_ask_work_order_confirmed", "action_finish_work_order",
            "action_kb_feedback", "action_check_work_order_status",
            "action_rate_work_order"} <= set(executor.actions)  # fmt: skip


class FakeSearchNone:
    async def search(self, query: str, k: int, lang: str | None) -> KbAnswer:
        return KbAnswer()


async def test_a_button_payload_keeps_the_conversation_language() -> None:
    from bot.actions.slots import ValidateSlotMappings

    t = tracker('/kb_feedback{"helpful":true,"kb_article_id":"kb-1"}', "kb_feedback",
                slots={"language": "zh"}, metadata={**META, "language": "en"})  # fmt: skip
    assert await ValidateSlotMappings().run(CollectingDispatcher(), t, DOMAIN) == []


async def test_not_this_but_that_replaces_the_words_in_the_field_that_has_them() -> None:
    slots = {"requested_slot": "work_order_confirmed", "location": "人民路5号门口", "description": "路灯坏了"}
    t = tracker("不是人民路 是解放路", "correct_field", slots=slots)
    assert slots_of(await ValidateWorkOrderForm().run(CollectingDispatcher(), t, DOMAIN)) == {
        "location": "解放路5号门口", "work_order_confirmed": None,
    }  # fmt: skip


async def test_changing_a_field_without_a_value_asks_for_it_again() -> None:
    slots = {"requested_slot": "work_order_confirmed", "location": "人民路5号", "description": "路灯坏了"}
    t = tracker("地址写错了", "correct_field", slots=slots)
    assert slots_of(await ValidateWorkOrderForm().run(CollectingDispatcher(), t, DOMAIN)) == {
        "location": None, "work_order_confirmed": None,
    }  # fmt: skip


async def test_rating_is_stored_for_the_filer_only() -> None:
    from bot.actions.rating import ActionRateWorkOrder

    desk = FakeDesk({ORDER.number: ORDER})
    entities: list[dict[str, Any]] = [{"entity": "work_order_number", "value": ORDER.number},
                                      {"entity": "score", "value": 5}]
    payload = '/rate_work_order{"work_order_number":"BJ-20261123-0007","score":5}'
    dispatcher = CollectingDispatcher()
    events = await ActionRateWorkOrder(desk).run(dispatcher, tracker(payload, "rate_work_order", entities=entities),
                                                 DOMAIN)  # fmt: skip
    assert desk.ratings == [(ORDER.number, 5)] and "感谢" in dispatcher.messages[0]["text"]
    assert slots_of(events) == {"work_order_id": ORDER.number}
    stranger = tracker(payload, "rate_work_order", entities=entities, metadata={**META, "contact_id": "c-2"})
    dispatcher = CollectingDispatcher()
    assert await ActionRateWorkOrder(desk).run(dispatcher, stranger, DOMAIN) == []
    assert desk.ratings == [(ORDER.number, 5)] and "无法登记" in dispatcher.messages[0]["text"]
    bad_score = [{"entity": "work_order_number", "value": ORDER.number}, {"entity": "score", "value": "9"}]
    dispatcher = CollectingDispatcher()
    await ActionRateWorkOrder(desk).run(dispatcher, tracker(payload, "rate_work_order", entities=bad_score), DOMAIN)
    assert desk.ratings == [(ORDER.number, 5)] and "无法登记" in dispatcher.messages[0]["text"]
