"""bot.training: the fingerprint tracks the training inputs, and a current model is reused without Rasa."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.training import TrainingError, ensure_model, model_path, training_fingerprint

ROOT = Path(__file__).resolve().parents[2]
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"


def _project(tmp_path: Path) -> Path:
    (tmp_path / "bot" / "jieba").mkdir(parents=True)
    (tmp_path / "bot" / "config.yml").write_text("language: zh\n")
    (tmp_path / "bot" / "jieba" / "userdict.txt").write_text("公积金 100 n\n")
    (tmp_path / "bot" / "endpoints.yml").write_text("action_endpoint: {}\n")
    (tmp_path / "training_data" / "data" / "nlu").mkdir(parents=True)
    (tmp_path / "training_data" / "data" / "nlu" / "zh.yml").write_text("nlu: []\n")
    return tmp_path


def test_fingerprint_follows_training_inputs_only(tmp_path: Path) -> None:
    root = _project(tmp_path)
    first = training_fingerprint(root)
    assert first == training_fingerprint(root)
    (root / "bot" / "endpoints.yml").write_text("changed: true\n")  # not a training input
    assert training_fingerprint(root) == first
    (root / "bot" / "jieba" / "userdict.txt").write_text("滨江通 100 n\n")
    second = training_fingerprint(root)
    assert second != first
    (root / "training_data" / "data" / "nlu" / "zh.yml").rename(root / "training_data" / "data" / "nlu" / "cn.yml")
    assert training_fingerprint(root) != second


def test_current_model_is_reused_and_missing_rasa_is_a_clear_error(tmp_path: Path) -> None:
    root = _project(tmp_path)
    models = tmp_path / "models"
    with pytest.raises(TrainingError, match="not installed"):
        ensure_model(root, models, tmp_path / "no-such-rasa")
    target = model_path(root, models)
    assert target.name == f"{training_fingerprint(root)[:16]}.tar.gz"
    models.mkdir()
    target.write_bytes(b"model")
    assert ensure_model(root, models, tmp_path / "no-such-rasa") == target


def test_cli_prints_fingerprint() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.training", "--fingerprint"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == training_fingerprint(ROOT)


@pytest.mark.skipif(not RASA_PYTHON.exists(), reason="the Rasa environment (.venv-rasa) is not built")
def test_gateway_channel_summarizes_only_its_own_turn() -> None:
    # The channel runs inside Rasa's Python 3.10; check its pure turn summary there.
    script = """
import json
from gateway_channel import GatewayInput, summarize_turn
events = [
    {"event": "action", "name": "action_listen"},
    {"event": "user", "message_id": "m1", "parse_data": {"intent": {"name": "greet", "confidence": 0.9}}},
    {"event": "slot", "name": "language", "value": "zh"},
    {"event": "action", "name": "utter_greet"},
    {"event": "action", "name": "action_listen"},
    {"event": "user", "message_id": "m2", "parse_data": {"intent": {"name": "request_human", "confidence": 0.8}}},
    {"event": "action", "name": "action_request_human"},
    {"event": "slot", "name": "handoff_requested", "value": True},
    {"event": "action", "name": "action_listen"},
]
print(json.dumps([GatewayInput.name(), summarize_turn(events, "m1"), summarize_turn(events, "m2"),
                  summarize_turn(events, "nope")]))
"""
    result = subprocess.run(
        [str(RASA_PYTHON), "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "bot" / "engine")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    name, first, second, missing = json.loads(result.stdout.strip().splitlines()[-1])
    assert name == "gateway"
    assert first == {
        "intent": {"name": "greet", "confidence": 0.9},
        "slots_set": {"language": "zh"},
        "latest_action": "utter_greet",
    }
    assert second == {
        "intent": {"name": "request_human", "confidence": 0.8},
        "slots_set": {"handoff_requested": True},
        "latest_action": "action_request_human",
    }
    assert missing == {"intent": None, "slots_set": {}, "latest_action": None}
