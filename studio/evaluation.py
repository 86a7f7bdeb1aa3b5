"""Comparing two models on the same examples: intent accuracy, per-intent F1, confusions, what got worse.

The examples are a fixed, deterministic sample of the project's NLU examples (one in five, by a hash of the text, so
the sample does not move when staff add examples elsewhere) plus every real citizen message staff labelled in the
review queue. Both models have seen the sampled examples in training, so this is a regression check: it catches a
new model that forgot what the live one knew, and shows whether the citizens' own wording is now understood.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

SAMPLE_ONE_IN = 5
MAX_SAMPLE = 400


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    source: str  # "training" or "review"


def evaluation_set(training: list[tuple[str, str]], labelled: list[tuple[str, str]]) -> list[Example]:
    """A deterministic sample of (text, intent) training pairs plus every labelled review-queue message."""
    chosen = [
        Example(text, intent, "training")
        for text, intent in training
        if int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) % SAMPLE_ONE_IN == 0
    ][:MAX_SAMPLE]
    seen = {e.text for e in chosen}
    chosen += [Example(text, intent, "review") for text, intent in labelled if text not in seen]
    return chosen


def _scores(gold: list[str], predicted: list[str | None]) -> dict[str, Any]:
    correct = sum(g == p for g, p in zip(gold, predicted, strict=True))
    per_intent = {}
    for intent in sorted(set(gold)):
        tp = sum(g == intent and p == intent for g, p in zip(gold, predicted, strict=True))
        fp = sum(g != intent and p == intent for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == intent and p != intent for g, p in zip(gold, predicted, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_intent[intent] = {"f1": round(f1, 3), "support": tp + fn}
    confusions = Counter((g, p or "-") for g, p in zip(gold, predicted, strict=True) if g != p)
    return {
        "accuracy": round(correct / len(gold), 4) if gold else 0.0,
        "per_intent": per_intent,
        "confusions": [{"intent": g, "predicted": p, "count": n} for (g, p), n in confusions.most_common(15)],
    }


def compare(examples: list[Example], live: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation table: both models' scores and the examples whose answer changed."""
    gold = [e.intent for e in examples]
    live_intents = [p.get("intent") for p in live]
    new_intents = [p.get("intent") for p in new]
    live_scores, new_scores = _scores(gold, live_intents), _scores(gold, new_intents)
    per_intent = [
        {"intent": intent, "support": new_scores["per_intent"][intent]["support"],
         "live_f1": live_scores["per_intent"][intent]["f1"], "new_f1": new_scores["per_intent"][intent]["f1"]}
        for intent in sorted(new_scores["per_intent"])
    ]  # fmt: skip
    worse, better = [], []
    for example, old, fresh in zip(examples, live, new, strict=True):
        row = {"text": example.text, "intent": example.intent, "source": example.source,
               "live": old.get("intent"), "live_confidence": _round(old.get("confidence")),
               "new": fresh.get("intent"), "new_confidence": _round(fresh.get("confidence"))}  # fmt: skip
        if old.get("intent") == example.intent and fresh.get("intent") != example.intent:
            worse.append(row)
        elif old.get("intent") != example.intent and fresh.get("intent") == example.intent:
            better.append(row)
    return {
        "examples": len(examples),
        "from_review": sum(e.source == "review" for e in examples),
        "live_accuracy": live_scores["accuracy"],
        "new_accuracy": new_scores["accuracy"],
        "per_intent": per_intent,
        "confusions": new_scores["confusions"],
        "worse": worse,
        "better": better,
        "recommended": new_scores["accuracy"] >= live_scores["accuracy"] and len(worse) <= len(better),
    }


def _round(value: Any) -> float | None:
    return round(float(value), 3) if isinstance(value, int | float) else None
