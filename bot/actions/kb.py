"""`action_answer_kb`: answers a how-to question from the knowledge base.

It also runs when the NLU is unsure (nlu_fallback) or calls the message out of scope: measured on the dev and tuning
queries (424), the NLU put 11 answerable questions there ("楼顶漏水想用维修基金", "学前资助", "water outage 通知"),
and the KB answered all 11 with the right article, while of the 27 truly out-of-scope ones the KB answered one. So an
unsure NLU defers to the KB's own verdict, and "out of scope" is overruled only by a confident KB answer
(`OUT_OF_SCOPE_MIN_CONFIDENCE`: 5 of the 6 answerable kept, all 24 out-of-scope still refused).
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.feedback import feedback_payload
from bot.actions.ports import ArticleHit, ArticleSearch, KbAnswer
from bot.actions.slots import turn_language
from bot.actions.work_order_text import grievance, tells_a_report

logger = structlog.get_logger(__name__)

ANSWER_BODY_CHARS = 300
SUGGESTIONS = 3
REQUEST_HUMAN_PAYLOAD = "/request_human"
FILE_COMPLAINT_PAYLOAD = "/complain"
WORK_ORDER_FORM = "work_order_form"
OUT_OF_SCOPE_MIN_CONFIDENCE = 0.5

# A sentence ends at Chinese 。！？ (no space needed) or at English . ! ? followed by whitespace or the end.
_SENTENCE_END = re.compile(r"[。！？]|[.!?](?=\s|$)")

_TEXT = {
    "zh": {
        "not_sure": "抱歉，这个问题我不太确定怎么回答。您想问的是下面哪一个？也可以转人工。",
        "not_sure_no_hits": "抱歉，这个问题我不太确定怎么回答。您可以换个说法，或者转人工。",
        "out_of_scope": "抱歉，这个问题不在政务服务范围内。我可以解答办事指南、受理报修和投诉、查询工单进度。",
        "unavailable": "抱歉，知识库暂时无法查询。您可以稍后再问，或者转人工。",
        "person": "转人工",
        "grievance": "听起来您遇到了需要有人处理的问题。需要我帮您登记投诉、转给相关部门处理吗？",
        "file_complaint": "登记投诉",
        "filing": "听起来这件事需要有关部门处理，我来帮您登记工单。",
        "grievance_too": "如果您希望有关部门处理这件事，我可以帮您登记投诉。",
        "helpful": "👍 有帮助",
        "not_helpful": "👎 没帮助",
    },
    "en": {
        "not_sure": "Sorry, I'm not sure about that one. Did you mean one of these? Or I can get you a person.",
        "not_sure_no_hits": "Sorry, I'm not sure about that one. Try asking another way, or talk to a person.",
        "out_of_scope": "Sorry, that's outside what the city can help with. I can answer how-to questions about city "
                        "services, take reports and complaints, and check work orders.",
        "unavailable": "Sorry, the knowledge base can't be searched right now. Try again later or talk to a person.",
        "person": "Talk to a person",
        "grievance": "It sounds like something went wrong that someone should deal with. Shall I file a complaint "
                     "and pass it to the department responsible?",
        "file_complaint": "File a complaint",
        "filing": "That sounds like something the department responsible should deal with: let me file it for you.",
        "grievance_too": "If you want the department responsible to act on this, I can file a complaint for you.",
        "helpful": "👍 Helpful",
        "not_helpful": "👎 Not helpful",
    },
}


def cut_on_sentence(text: str, limit: int = ANSWER_BODY_CHARS) -> str:
    """`text` cut to at most about `limit` characters, at the last sentence end that fits.

    Falls back to a hard cut with "…" when no sentence ends in the last two thirds of the window (one very long
    sentence), so a reply never balloons on SMS.
    """
    text = text.strip()
    if len(text) <= limit:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text[: limit + 1]) if m.end() <= limit]
    if ends and ends[-1] >= limit // 3:
        return text[: ends[-1]].rstrip()
    return text[:limit].rstrip() + "…"


def format_answer(hit: ArticleHit, lang: str) -> str:
    """The article's title (where the answer comes from, in words a citizen reads), then its body cut on a sentence
    boundary. Internal article ids stay in the turn's metadata (`kb_article_ids`), never in the citizen's text."""
    parts = [hit.title(lang), cut_on_sentence(hit.body(lang))]
    return "\n".join(part for part in parts if part)


def feedback_buttons(article_id: str, lang: str) -> list[dict[str, Any]]:
    """ "Was this helpful?" as two quick replies carrying the article id (intent kb_feedback)."""
    return [
        {"title": _TEXT[lang]["helpful"], "payload": feedback_payload(article_id, True)},
        {"title": _TEXT[lang]["not_helpful"], "payload": feedback_payload(article_id, False)},
    ]


def clarify_buttons(hits: list[ArticleHit], lang: str) -> list[dict[str, Any]]:
    """Up to three closest article titles (payload: the title, asked again as a question) and a person."""
    buttons: list[dict[str, Any]] = []
    seen: set[str] = set()
    for hit in hits:
        title = hit.title(lang)
        if not title or title in seen:
            continue
        seen.add(title)
        buttons.append({"title": title, "payload": title})
        if len(buttons) == SUGGESTIONS:
            break
    buttons.append({"title": _TEXT[lang]["person"], "payload": REQUEST_HUMAN_PAYLOAD})
    return buttons


class ActionAnswerKb(Action):
    """Answers with the best article when the search finds one good enough; otherwise says it is not sure."""

    def __init__(self, search: ArticleSearch) -> None:
        self._search = search

    def name(self) -> str:
        return "action_answer_kb"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        lang = turn_language(tracker)
        query = str(tracker.latest_message.get("text") or "").strip()
        try:
            answer = await self._search.search(query, SUGGESTIONS, lang) if query else KbAnswer()
        except Exception:
            # Why: a failing search must not leave the citizen without a reply; offer a person instead.
            logger.exception("kb.search_failed", sender_id=tracker.sender_id)
            dispatcher.utter_message(
                text=_TEXT[lang]["unavailable"],
                buttons=[{"title": _TEXT[lang]["person"], "payload": REQUEST_HUMAN_PAYLOAD}],
            )
            return [SlotSet("kb_article_ids", [])]

        told = grievance(query)
        if tells_a_report(query):
            # A story of something wrong is a report or a complaint, whatever the NLU made of it: file it (the form
            # takes the story as its description and asks only what is missing; "算了" stops it).
            dispatcher.utter_message(text=_TEXT[lang]["filing"])
            logger.info("kb.report_told", lang=lang, grievance=told)
            return [SlotSet("kb_article_ids", []), SlotSet("category", "complaint" if told else "report"),
                    FollowupAction(WORK_ORDER_FORM)]
        if told == 2 or (told == 1 and not answer.answerable):
            # A complaint told with indignation (or one the KB has no answer for) is not answered with a how-to
            # article: offer to file it (the form takes this story as its description), the closest articles as a
            # way on, and a person.
            buttons = [{"title": _TEXT[lang]["file_complaint"], "payload": FILE_COMPLAINT_PAYLOAD}]
            buttons += clarify_buttons(answer.hits, lang)[:2] if answer.answerable else []
            if not any(b["payload"] == REQUEST_HUMAN_PAYLOAD for b in buttons):
                buttons.append({"title": _TEXT[lang]["person"], "payload": REQUEST_HUMAN_PAYLOAD})
            dispatcher.utter_message(text=_TEXT[lang]["grievance"], buttons=buttons)
            logger.info("kb.grievance_offered", lang=lang)
            return [SlotSet("kb_article_ids", [])]

        out_of_scope = (tracker.latest_message.get("intent") or {}).get("name") == "out_of_scope"
        confident = answer.confidence is None or answer.confidence >= OUT_OF_SCOPE_MIN_CONFIDENCE
        if answer.answerable and answer.hits and (confident or not out_of_scope):
            best = answer.hits[0]
            buttons = feedback_buttons(best.id, lang)
            text = format_answer(best, lang)
            if told:  # a story of something wrong: the answer, and the offer to file it
                text = f"{text}\n{_TEXT[lang]['grievance_too']}"
                buttons = [{"title": _TEXT[lang]["file_complaint"], "payload": FILE_COMPLAINT_PAYLOAD}, *buttons]
            dispatcher.utter_message(text=text, buttons=buttons)
            logger.info("kb.answered", article_id=best.id, score=best.score, lang=lang)
            return [SlotSet("kb_article_ids", [best.id])]

        text_key = "out_of_scope" if out_of_scope else "not_sure" if answer.hits else "not_sure_no_hits"
        # The closest topics stay as buttons after "out of scope" too: the way back when the NLU was wrong.
        dispatcher.utter_message(text=_TEXT[lang][text_key], buttons=clarify_buttons(answer.hits, lang))
        logger.info("kb.not_sure", candidates=[hit.id for hit in answer.hits[:SUGGESTIONS]], lang=lang,
                    out_of_scope=out_of_scope, confidence=answer.confidence)
        return [SlotSet("kb_article_ids", [])]
