"""Studio fixtures: a copy of the project's training data in a temporary folder (tests never touch training_data/,
whose hash names the model everyone shares)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from studio.project import TrainingProject

ROOT = Path(__file__).resolve().parent.parent.parent
TRAINING_DATA = ROOT / "training_data"


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    target = tmp_path / "training_data"
    shutil.copytree(TRAINING_DATA, target)
    return target


@pytest.fixture
def project(project_dir: Path) -> TrainingProject:
    return TrainingProject(project_dir)


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.yml"))}
