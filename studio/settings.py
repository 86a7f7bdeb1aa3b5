"""The content studio's settings (environment variables, combined into the app's Settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from gateway.settings import PROJECT_ROOT


class StudioSettings(BaseSettings):
    """What the studio edits and what goes to its review queue."""

    studio_project_dir: Path = Field(
        PROJECT_ROOT / "training_data",
        description="The Rasa training data the studio edits (domain/ and data/); tests point it at a copy.",
    )
    studio_confidence_threshold: float = Field(
        0.6, ge=0, le=1, description="Turns whose intent confidence is below this go to the studio's review queue."
    )
