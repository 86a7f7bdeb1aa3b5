"""The one Settings the app is built from: the core's and every package's own, combined.

Each package declares the environment variables it reads (gateway/settings.py, channels/<name>/settings.py,
kb_retrieval/settings.py, …); a channel's are found through the channel registry, so a new channel brings its
settings with it. The README's configuration table lists every field; tests/test_readme.py keeps the two in step.
"""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from channels import plugins
from crm_adapter.settings import WorkOrderSettings
from gateway.settings import GatewaySettings
from handoff.settings import InboxSettings
from handoff.slack.settings import SlackDeskSettings
from kb_retrieval.settings import KnowledgeBaseSettings
from reports.settings import ReportSettings
from studio.settings import StudioSettings

FEATURES = (KnowledgeBaseSettings, WorkOrderSettings, InboxSettings, SlackDeskSettings, StudioSettings, ReportSettings)


class Settings(GatewaySettings, *(p.settings for p in plugins()), *FEATURES):  # type: ignore[misc]
    """Every setting of the gateway. Field names map to upper-case environment variables."""

    # Stated here as well: each package's class brings pydantic-settings' own defaults, and the last base's win.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")
