"""The work-order form (`work_order_form`): collect a report or complaint, read it back, file it on "yes".

Three actions:
- `validate_work_order_form` fills the form's slots. At activation (report_problem / complain) it presets the
  category from the intent, takes the description from the message when it says what happened, a place named in
  it (kept exactly as written), a phone number from the channel's metadata or the text, photos from the
  attachments. Afterwards it fills only the slot the form asked for, from the whole text, and handles corrections
  ("地址改成…", "change the address to …") at any step and a cancel ("算了", "cancel").
- `action_ask_work_order_confirmed` reads back a summary and asks to confirm.
- `action_finish_work_order` runs when the form ends: files through the work-order desk when confirmed (answering
  with the number and the expected date, or the open order a repeat was linked to), else says it was dropped;
  then clears the form's slots.
"""

from __future__ import annotations

from typing import Any

import structlog
from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecutionRejected, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.ports import WorkOrderDesk, WorkOrderDraft
from bot.actions.slots import turn_language
from bot.actions.work_order_text import (
    CATEGORIES,
    CATEGORY_OF_INTENT,
    category_from_words,
    field_to_change,
    find_correction,
    find_location,
    find_phone,
    find_replacement,
    is_descriptive,
    is_explicit_cancel,
    is_plain_no,
    valid_phone,
)

logger = structlog.get_logger(__name__)

FORM = "work_order_form"
REQUESTED_SLOT = "requested_slot"
CONFIRMED = "work_order_confirmed"
FORM_SLOTS = ("category", "description", "location", "phone", "photo", CONFIRMED)
# Intents that may mean "stop" at the read-back (with a bare "no"; elsewhere only a cancel in words stops the form).
CANCEL_INTENTS = {"deny"}
# Intents that leave the form for another path (a rule answers them); the form stays unfilled.
ESCAPE_INTENTS = {"request_human"}
ESCAPE_CONFIDENCE = 0.8

_CATEGORY_NAMES = {
    "zh": {"consultation": "咨询", "complaint": "投诉", "report": "报修/反映", "suggestion": "建议", "praise": "表扬"},
    "en": {c: c for c in ("consultation", "complaint", "report", "suggestion", "praise")},
}
_TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "summary": "请核对您的工单信息：\n类别：{category}\n内容：{description}\n地点：{location}\n"
        "联系电话：{phone}{photos}\n"
        "确认提交请回复“是”；需要修改请直接说，比如“地址改成…”；不提交请回复“算了”。",
        "photos": "\n照片：{count} 张",
        "none": "（无）",
        "yes": "确认提交",
        "no": "算了",
        "filed": "已为您登记工单 {number}，已转{department}处理，预计 {due} 前办结。可随时发送工单号查询进度。",
        "linked": "您反映的问题已有工单 {number} 正在处理（{department}），这次反映已合并到该工单，不再重复登记。"
        "预计 {due} 前办结。",
        "cancelled": "好的，已取消，这次不登记工单。还有其他可以帮您的吗？",
        "failed": "抱歉，工单系统暂时无法登记。您可以稍后再试，或发送“转人工”由工作人员为您登记。",
        "no_contact": "抱歉，当前渠道无法识别您的身份，暂时不能登记工单。请发送“转人工”由工作人员为您登记。",
        "invalid_phone": "这个号码好像不对。请输入 11 位手机号（如 13812345678）或带区号的座机号（如 0571-87654321）。",
        "not_understood": "抱歉，我没听明白。",
        "corrected": "好的，已修改。",
    },
    "en": {
        "summary": "Please check your work order:\nCategory: {category}\nWhat happened: {description}\n"
        "Where: {location}\nContact phone: {phone}{photos}\n"
        "Reply \"yes\" to submit, tell me what to change (e.g. \"change the address to …\"), or \"cancel\".",
        "photos": "\nPhotos: {count}",
        "none": "(none)",
        "yes": "Submit",
        "no": "Cancel",
        "filed": "Your work order {number} has been filed and passed to {department}. Expected to be resolved by "
        "{due}. Send the number any time to check on it.",
        "linked": "This is already being handled as work order {number} ({department}); your report has been added "
        "to it rather than filed twice. Expected to be resolved by {due}.",
        "cancelled": "OK, cancelled: no work order was filed. Anything else I can help with?",
        "failed": "Sorry, the work-order system can't take this right now. Please try again later, or ask for a "
        "person and a member of staff will file it for you.",
        "no_contact": "Sorry, I can't tell who you are on this channel, so I can't file a work order here. Ask for a "
        "person and a member of staff will file it for you.",
        "invalid_phone": "That number doesn't look right. Please give an 11-digit mobile number (like 13812345678) "
        "or a landline with its area code (like 0571-87654321).",
        "not_understood": "Sorry, I didn't get that.",
        "corrected": "OK, changed.",
    },
}  # fmt: skip


def message_metadata(tracker: Tracker) -> dict[str, Any]:
    """The gateway's metadata of the latest message, else of the last user message that had any."""
    metadata = (tracker.latest_message or {}).get("metadata")
    if isinstance(metadata, dict) and metadata:
        return metadata
    for event in reversed(tracker.events or []):
        if event.get("event") == "user" and isinstance(event.get("metadata"), dict) and event["metadata"]:
            return dict(event["metadata"])
    return {}


def photos_of(metadata: dict[str, Any]) -> list[str]:
    """References (stored ref, else URL) of the images attached to a message."""
    photos: list[str] = []
    for item in metadata.get("attachments") or []:
        if not isinstance(item, dict):
            continue
        kind, mime = str(item.get("kind") or ""), str(item.get("mime") or "")
        if kind in ("image", "photo") or mime.startswith("image/"):
            reference = item.get("ref") or item.get("url")
            if reference:
                photos.append(str(reference))
    return photos


def _intent(tracker: Tracker) -> tuple[str | None, float]:
    intent = (tracker.latest_message or {}).get("intent") or {}
    return intent.get("name"), float(intent.get("confidence") or 0.0)


def _text(tracker: Tracker) -> str:
    return str((tracker.latest_message or {}).get("text") or "").strip()


def _is_payload(text: str) -> bool:
    return text.startswith("/")


class ValidateWorkOrderForm(Action):
    """Fills the form's slots from the citizen's messages (see the module docstring)."""

    def name(self) -> str:
        return f"validate_{FORM}"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        requested = tracker.get_slot(REQUESTED_SLOT)
        if requested is None:
            return self._on_activation(tracker)
        return self._on_answer(dispatcher, tracker, str(requested))

    def _on_activation(self, tracker: Tracker) -> list[dict[str, Any]]:
        """What the triggering message and its metadata already tell."""
        intent, _ = _intent(tracker)
        text = _text(tracker)
        if _is_payload(text):
            # "File a complaint" pressed after telling the story: the story is what to file.
            text = _earlier_story(tracker) or text
        metadata = message_metadata(tracker)
        found: dict[str, Any] = {}
        if tracker.get_slot("category") not in CATEGORIES:
            found["category"] = CATEGORY_OF_INTENT.get(intent or "", "report")
        if not _is_payload(text) and is_descriptive(text):
            found["description"] = text
            place = find_location(text)
            if place and tracker.get_slot("location") is None:
                found["location"] = place
        phone = valid_phone(metadata.get("phone")) or (None if _is_payload(text) else find_phone(text))
        if phone and tracker.get_slot("phone") is None:
            found["phone"] = phone
        photos = photos_of(metadata)
        if photos:
            found["photo"] = photos
        logger.info("work_order_form.started", intent=intent, prefilled=sorted(found))
        return [SlotSet(name, value) for name, value in found.items()]

    def _on_answer(self, dispatcher: CollectingDispatcher, tracker: Tracker, requested: str) -> list[dict[str, Any]]:
        """The citizen answered the question for `requested` (or corrected, or cancelled)."""
        lang = turn_language(tracker)
        text = _text(tracker)
        intent, confidence = _intent(tracker)
        events: list[dict[str, Any]] = []
        photos = photos_of(message_metadata(tracker))
        if photos:
            events.append(SlotSet("photo", list(tracker.get_slot("photo") or []) + photos))

        if intent in ESCAPE_INTENTS and confidence >= ESCAPE_CONFIDENCE:
            # Let the rules take this turn (a person was asked for); the form is left by that rule.
            return [ActionExecutionRejected(FORM)]

        correction = None if _is_payload(text) else find_correction(text)
        if correction is not None:
            return events + self._correct(dispatcher, tracker, correction.field, correction.value, lang)

        # Looser readings of a correction only where one is expected (not inside an address or a description).
        if not _is_payload(text) and (intent == "correct_field" or (requested == CONFIRMED and intent != "affirm")):
            replaced = self._replace(tracker, text)
            if replaced is not None:
                return events + self._correct(dispatcher, tracker, replaced[0], replaced[1], lang)
            field = field_to_change(text)
            if field in ("description", "location", "phone"):
                # "地址写错了": ask for that field again, then read the summary back.
                return events + [SlotSet(str(field), None), SlotSet(CONFIRMED, None)]

        # Only a cancel in words stops the form ("算了", "cancel"): an address or a description the NLU read as
        # `deny` ("不是在小区里面，是在外面马路上") is the answer to the question asked. At the read-back a bare
        # "no" to "reply yes to submit" is a cancel too.
        if not _is_payload(text) and (
            is_explicit_cancel(text)
            or (requested == CONFIRMED and intent in CANCEL_INTENTS and is_plain_no(text))
        ) or text == "/deny":
            # Stop without filing (action_finish_work_order sees confirmed=False).
            return events + [SlotSet(CONFIRMED, False), SlotSet(REQUESTED_SLOT, None)]

        if requested == CONFIRMED:
            if intent == "affirm":
                return events + [SlotSet(CONFIRMED, True)]
            dispatcher.utter_message(text=_TEXT[lang]["not_understood"])
            return events + [SlotSet(CONFIRMED, None)]  # asks for confirmation again

        if requested == "phone":
            phone = find_phone(text)
            if phone is None:
                dispatcher.utter_message(text=_TEXT[lang]["invalid_phone"])
            return events + [SlotSet("phone", phone)]

        if requested in ("description", "location") and text and not _is_payload(text):
            # Free text kept whole: the citizen's words are the value, whatever entities NLU saw in them.
            return events + [SlotSet(requested, text)]
        return events + [SlotSet(requested, None)]

    @staticmethod
    def _replace(tracker: Tracker, text: str) -> tuple[str, str] | None:
        """ "不是人民路 是解放路": the field whose value holds the old words, with them replaced."""
        replacement = find_replacement(text)
        if replacement is None:
            return None
        old, new = replacement
        for field in ("location", "description", "phone"):
            value = tracker.get_slot(field)
            if isinstance(value, str) and old in value:
                return field, value.replace(old, new)
        return None

    def _correct(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, field: str, value: str, lang: str
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if field == "phone":
            phone = find_phone(value)
            if phone is None:
                dispatcher.utter_message(text=_TEXT[lang]["invalid_phone"])
                return [SlotSet(CONFIRMED, None)] if tracker.get_slot("phone") else [SlotSet("phone", None)]
            events.append(SlotSet("phone", phone))
        elif field == "category":
            category = category_from_words(value)
            if category is None:
                dispatcher.utter_message(text=_TEXT[lang]["not_understood"])
                return [SlotSet(CONFIRMED, None)]
            events.append(SlotSet("category", category))
        else:
            events.append(SlotSet(field, value))
        logger.info("work_order_form.corrected", field=field)
        if tracker.get_slot(REQUESTED_SLOT) == CONFIRMED:
            dispatcher.utter_message(text=_TEXT[lang]["corrected"])
        # The summary is read back again with the new value before filing.
        return [*events, SlotSet(CONFIRMED, None)]


def _summary_values(tracker: Tracker, lang: str) -> dict[str, str]:
    text = _TEXT[lang]
    category = str(tracker.get_slot("category") or "report")
    photos = list(tracker.get_slot("photo") or [])
    return {
        "category": _CATEGORY_NAMES[lang].get(category, category),
        "description": str(tracker.get_slot("description") or text["none"]),
        "location": str(tracker.get_slot("location") or text["none"]),
        "phone": str(tracker.get_slot("phone") or text["none"]),
        "photos": text["photos"].format(count=len(photos)) if photos else "",
    }


class ActionAskWorkOrderConfirmed(Action):
    """Reads the collected order back and asks the citizen to confirm, correct or cancel."""

    def name(self) -> str:
        return f"action_ask_{CONFIRMED}"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        lang = turn_language(tracker)
        text = _TEXT[lang]
        dispatcher.utter_message(
            text=text["summary"].format(**_summary_values(tracker, lang)),
            buttons=[{"title": text["yes"], "payload": "/affirm"}, {"title": text["no"], "payload": "/deny"}],
        )
        return []


class ActionFinishWorkOrder(Action):
    """Files the confirmed order (or drops a cancelled one) and clears the form's slots."""

    def __init__(self, desk: WorkOrderDesk | None) -> None:
        self._desk = desk

    def name(self) -> str:
        return "action_finish_work_order"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        lang = turn_language(tracker)
        text = _TEXT[lang]
        cleared = [SlotSet(name, None) for name in FORM_SLOTS]
        if tracker.get_slot(CONFIRMED) is not True:
            dispatcher.utter_message(text=text["cancelled"])
            logger.info("work_order_form.cancelled", sender_id=tracker.sender_id)
            return cleared
        metadata = message_metadata(tracker)
        contact_id = metadata.get("contact_id")
        if not contact_id:
            dispatcher.utter_message(text=text["no_contact"])
            return cleared
        if self._desk is None:
            dispatcher.utter_message(text=text["failed"])
            return cleared
        draft = WorkOrderDraft(
            category=str(tracker.get_slot("category") or "report"),
            description=str(tracker.get_slot("description") or ""),
            location=tracker.get_slot("location"),
            phone=tracker.get_slot("phone"),
            contact_id=str(contact_id),
            conversation_id=metadata.get("conversation_id"),
            channel=str(metadata.get("channel") or "unknown"),
            intent=_triggering_intent(tracker),
            language=lang,
            photos=list(tracker.get_slot("photo") or []),
        )
        try:
            filed = await self._desk.file(draft)
        except Exception:
            # Why: the citizen must hear that nothing was filed, and get a way forward, whatever broke.
            logger.exception("work_order_form.file_failed", sender_id=tracker.sender_id)
            dispatcher.utter_message(
                text=text["failed"],
                buttons=[{"title": "转人工" if lang == "zh" else "Talk to a person", "payload": "/request_human"}],
            )
            return cleared
        department = filed.department_name_en if lang == "en" else filed.department_name_zh
        key = "linked" if filed.duplicate else "filed"
        dispatcher.utter_message(text=text[key].format(number=filed.number, department=department, due=filed.due_date))
        logger.info("work_order_form.filed", number=filed.number, duplicate=filed.duplicate)
        return [*cleared, SlotSet("work_order_id", filed.number)]


def _earlier_story(tracker: Tracker) -> str | None:
    """The citizen's last message before this one when it told what happened (not a button, not "I want to report")."""
    users = [e for e in tracker.events or [] if e.get("event") == "user"]
    for event in reversed(users[:-1][-3:]):
        text = str(event.get("text") or "").strip()
        if text and not _is_payload(text):
            return text if is_descriptive(text) else None
    return None


def _triggering_intent(tracker: Tracker) -> str | None:
    """The intent that started the form (report_problem or complain), for routing."""
    for event in reversed(tracker.events or []):
        if event.get("event") == "user":
            name = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            if name in CATEGORY_OF_INTENT:
                return str(name)
    return None
