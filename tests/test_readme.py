"""The README's configuration table names every setting, and nothing it names is missing from the settings."""

from __future__ import annotations

import re
from pathlib import Path

from app.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def configuration_rows() -> set[str]:
    section = README.read_text(encoding="utf-8").split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z0-9_]+)` \|", section, flags=re.MULTILINE))


def test_every_setting_is_in_the_readme_table() -> None:
    settings = {name.upper() for name in Settings.model_fields}
    rows = configuration_rows()
    assert settings - rows == set(), "settings missing from the README's configuration table"
    assert rows - settings == set(), "README rows that are not settings"


def test_readme_sections_in_order() -> None:
    text = README.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert headings[:4] == ["Two commands", "The processes", "Configuration", "Developing"]
    assert "make run" in text and "make test" in text and "make bench" in text and "make lint" in text
