"""`action_kb_feedback`: stores a citizen's 👍/👎 on a knowledge-base answer and thanks them.

The answer's quick replies send `/kb_feedback{"helpful": true, "kb_article_id": "kb-…"}`; Rasa turns the payload
into intent kb_feedback with the entities `helpful` and `kb_article_id` (never learnt from NLU examples).
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.ports import ArticleFeedback
from bot.actions.slots import turn_language
from bot.actions.work_order_form import message_metadata

logger = structlog.get_logger(__name__)

FEEDBACK_INTENT = "kb_feedback"
QUESTION_INTENT = "ask_question"

_TEXT = {
    "zh": {True: "谢谢您的反馈！", False: "谢谢反馈，我们会改进这条解答。需要的话可以发送“转人工”。"},
    "en": {
        True: "Thanks for the feedback!",
        False: "Thanks, we'll improve this answer. Ask for a person if you need one.",
    },
}


def feedback_payload(article_id: str, helpful: bool) -> str:
    """The quick-reply payload for one vote on one article."""
    return "/" + FEEDBACK_INTENT + json.dumps({"helpful": helpful, "kb_article_id": article_id}, separators=(",", ":"))


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    return None


def _entity(tracker: Tracker, name: str) -> Any:
    return next((e.get("value") for e in tracker.latest_message.get("entities") or [] if e.get("entity") == name), None)


def _question(tracker: Tracker) -> str | None:
    """The citizen's last question answered from the knowledge base (what the vote is about)."""
    for event in reversed(tracker.events or []):
        if event.get("event") == "user":
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            if intent == QUESTION_INTENT and event.get("text"):
                return str(event["text"])
    return None


class ActionKbFeedback(Action):
    """Records the vote through the feedback port (when it names an article) and thanks the citizen briefly."""

    def __init__(self, feedback: ArticleFeedback | None) -> None:
        self._feedback = feedback

    def name(self) -> str:
        return "action_kb_feedback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        helpful = _as_bool(_entity(tracker, "helpful"))
        article_id = _entity(tracker, "kb_article_id")
        if helpful is not None and article_id and self._feedback is not None:
            try:
                await self._feedback.record(
                    str(article_id), helpful, message_metadata(tracker).get("conversation_id"), _question(tracker)
                )
                logger.info("kb.feedback", article_id=article_id, helpful=helpful)
            except Exception:
                # Why: a lost vote is not worth an error message to the citizen.
                logger.exception("kb.feedback_failed", article_id=article_id)
        dispatcher.utter_message(text=_TEXT[turn_language(tracker)][helpful is not False])
        return []
