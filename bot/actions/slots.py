"""`action_validate_slot_mappings`: fills the custom-mapped `language` slot after every user message."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import ValidationAction
from rasa_sdk.types import DomainDict

from bot.actions.language import DEFAULT_LANGUAGE, SUPPORTED_LANGUAGES, language_of_message


class ValidateSlotMappings(ValidationAction):
    """Sets `language` from the gateway's message metadata (or a guess from the text) when it changes.

    Only `language` is extracted here; the other custom slots are set by the actions that own them.
    """

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        # Without this, rasa-sdk would look for extract_<slot> methods for every global slot.
        return ["language"] if "language" in domain_slots else []

    async def extract_language(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        current = tracker.get_slot("language")
        text = str((tracker.latest_message or {}).get("text") or "")
        if text.startswith("/") and current in SUPPORTED_LANGUAGES:
            # A button payload ("/affirm", "/kb_feedback{...}") is not written in any language: keep the current one.
            return {}
        language = language_of_message(tracker.latest_message)
        if current == language:
            return {}  # unchanged: no SlotSet, so the turn's slots_set stays meaningful
        return {"language": language}

    async def validate_language(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return {"language": value if value in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE}


def turn_language(tracker: Tracker) -> str:
    """The language to answer in: the `language` slot, else what the latest message looks like."""
    language = tracker.get_slot("language")
    if language in SUPPORTED_LANGUAGES:
        return str(language)
    return language_of_message(tracker.latest_message)
