"""The Rasa training data: valid for Rasa, and enough examples per intent in each language."""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RASA_BIN = ROOT / ".venv-rasa" / "bin" / "rasa"
NLU_DIR = ROOT / "training_data" / "data" / "nlu"
DOMAIN_DIR = ROOT / "training_data" / "domain"
MIN_EXAMPLES_PER_LANGUAGE = 30
# Intents only ever sent as quick-reply payloads ("/kb_feedback{...}"): kept out of the NLU examples on purpose.
PAYLOAD_ONLY_INTENTS = {"kb_feedback", "rate_work_order"}
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Entity annotations: [text](entity) or [text]{"entity": ...}; count the visible text only.
ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


def _nlu_examples() -> dict[str, list[str]]:
    examples: dict[str, list[str]] = {}
    for path in sorted(NLU_DIR.rglob("*.yml")):
        for block in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu", []):
            if "intent" not in block:
                continue
            lines = [line.strip()[2:] for line in block["examples"].splitlines() if line.strip().startswith("- ")]
            examples.setdefault(block["intent"], []).extend(ANNOTATION.sub(r"\1", line) for line in lines)
    return examples


def _domain_intents() -> list[str]:
    intents: list[str] = []
    for path in sorted(DOMAIN_DIR.glob("*.yml")):
        intents.extend((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("intents", []))
    return intents


def test_every_intent_has_enough_examples_in_both_languages() -> None:
    examples = _nlu_examples()
    intents = _domain_intents()
    assert set(intents) >= {
        "greet", "goodbye", "thank", "affirm", "deny", "ask_question", "report_problem", "complain",
        "check_work_order_status", "request_human", "out_of_scope", "bot_challenge", "correct_field", "kb_feedback",
    }  # fmt: skip
    short: dict[str, Counter[str]] = {}
    for intent in intents:
        if intent in PAYLOAD_ONLY_INTENTS:
            assert intent not in examples, f"{intent} is payload-only"
            continue
        counts = Counter("zh" if CJK.search(text) else "en" for text in examples.get(intent, []))
        if counts["zh"] < MIN_EXAMPLES_PER_LANGUAGE or counts["en"] < MIN_EXAMPLES_PER_LANGUAGE:
            short[intent] = counts
    assert not short, f"intents with fewer than {MIN_EXAMPLES_PER_LANGUAGE} examples per language: {short}"


def test_no_example_is_listed_under_two_intents() -> None:
    seen: dict[str, str] = {}
    clashes = []
    for intent, texts in _nlu_examples().items():
        for text in texts:
            key = text.strip().lower()
            if key in seen and seen[key] != intent:
                clashes.append((text, seen[key], intent))
            seen[key] = intent
    assert not clashes


def test_responses_have_zh_default_and_en_variation() -> None:
    responses: dict[str, list[dict[str, object]]] = {}
    for path in sorted(DOMAIN_DIR.glob("*.yml")):
        responses.update((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("responses", {}))
    assert responses
    for name, variations in responses.items():
        defaults = [v for v in variations if not v.get("condition")]
        english = [
            v
            for v in variations
            if any(c.get("name") == "language" and c.get("value") == "en" for c in v.get("condition") or [])  # type: ignore[union-attr, attr-defined]
        ]
        assert defaults and CJK.search(str(defaults[0]["text"])), name
        assert english and not CJK.search(str(english[0]["text"])), name


@pytest.mark.skipif(not RASA_BIN.exists(), reason="the Rasa environment (.venv-rasa) is not built")
def test_rasa_data_validate_passes() -> None:
    result = subprocess.run(
        [
            str(RASA_BIN),
            "data",
            "validate",
            "--config",
            "bot/config.yml",
            "--domain",
            "training_data/domain",
            "--data",
            "training_data/data",
        ],  # fmt: skip
        cwd=ROOT,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    # Warnings (e.g. a response kept for a coming feature) are fine; errors are not.
    assert result.returncode == 0, output[-4000:]
    assert " ERROR " not in output, output[-4000:]
