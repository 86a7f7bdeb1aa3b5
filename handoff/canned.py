"""Canned responses for the reply box (a small list; agents pick one, edit it, send it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CANNED_PATH = Path(__file__).resolve().parent / "canned.yml"


def canned_responses(path: Path = CANNED_PATH) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return [{"key": str(item["key"]), "zh": str(item["zh"]), "en": str(item["en"])} for item in data]
