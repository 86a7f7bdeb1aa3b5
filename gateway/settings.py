"""The core's settings, read from the environment (and an optional `.env`), with embedded defaults.

Each feature package declares its own (channels/<name>/settings.py, handoff/settings.py, …); the composition root's
`app.settings.Settings` combines them into the one object the app is built from. The README's configuration table
lists every one of them; a test keeps the two in agreement.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class GatewaySettings(BaseSettings):
    """The core's settings. Field names map to upper-case environment variables; every feature package has its own
    settings class, and the app's Settings (app/settings.py) combines them all."""

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
    rasa_token: str = Field(
        "", description="Secret between the gateway and Rasa: Rasa's API token (--auth-token) and the gateway input "
        "channel's bearer token; empty = a random one kept in DATA_DIR/rasa.key (make run gives it to Rasa).",
    )
    actions_token: str = Field(
        "", description="Secret Rasa must send to the custom-action endpoint (/actions/webhook); empty = a random one "
        "kept in DATA_DIR/actions.key (make run gives it to Rasa).",
    )
    admin_token: str = Field(
        "", description="Bearer token for staff APIs (KB editing, work orders) until agents log in; empty = disabled."
    )
    metrics_token: str = Field(
        "", description="Bearer token Prometheus sends to GET /metrics; empty = /metrics takes the ADMIN_TOKEN only, "
        "and with neither it is closed.",
    )
    outbox_max_attempts: int = Field(6, ge=1, description="Tries per outbound message before it is marked failed.")
    outbox_retry_base_seconds: float = Field(
        2.0, gt=0, description="First retry delay of the outbox; doubled per try, with jitter."
    )
    outbox_retry_max_seconds: float = Field(300.0, gt=0, description="Longest delay between two tries of a send.")
    media_max_bytes: int = Field(
        10_000_000, gt=0, description="Largest attachment kept in DATA_DIR/media; larger ones are refused."
    )
    media_url_secret: str = Field(
        "", description="Signs the public, expiring links to files agents send; empty = a random key kept in DATA_DIR."
    )
    service_timezone: str = Field("Asia/Shanghai", description="The service centre's time zone (hours, inbox times).")
    log_level: str = Field("info", description="debug, info, warning or error.")
    log_json: bool = Field(False, description="Log JSON lines instead of console-friendly lines.")

    def secret_values(self) -> list[str]:
        """Every token, password and key set here: kept out of every log line (gateway/privacy.py)."""
        markers = ("token", "secret", "password", "aes_key")
        return [str(value) for name, value in self if value and any(m in name for m in markers)]

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
