"""Media a citizen sent (photos, voice notes, documents), kept in DATA_DIR/media: size-limited and type-checked.

Vendors' media URLs expire or need credentials, so what a message carries is fetched once, checked (declared type
allowed, and the bytes' own signature agreeing with it), stored under its content hash, and referenced from the
message as `media/<sha256>.<ext>`. What is refused keeps its vendor reference and a reason: never silently dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from gateway.hooks import Intercept
from gateway.keys import installation_secret
from gateway.storage import Conversation, Database, Message

log = structlog.get_logger(__name__)

# Allowed types and the file extension they are stored under.
ALLOWED_TYPES: dict[str, str] = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/amr": "amr",
    "audio/mp4": "m4a",
    "video/mp4": "mp4",
    "application/pdf": "pdf",
}

# The first bytes each type starts with (a declared type the bytes contradict is refused).
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "audio/ogg": (b"OggS",),
    "audio/mpeg": (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"),
    "audio/amr": (b"#!AMR",),
    "application/pdf": (b"%PDF-",),
}


class MediaRejected(Exception):
    """The media was not kept: too large, a type not allowed, or bytes that are not what they claim."""


@dataclass(frozen=True)
class StoredMedia:
    ref: str  # relative to DATA_DIR, e.g. media/ab12….jpg
    mime: str
    size: int
    sha256: str


def sniff_ok(mime: str, head: bytes) -> bool:
    """True when the first bytes agree with the declared type (types without a known signature pass)."""
    if mime in ("video/mp4", "audio/mp4"):
        return head[4:8] == b"ftyp"
    signatures = _SIGNATURES.get(mime)
    return signatures is None or any(head.startswith(s) for s in signatures)


class MediaStore:
    def __init__(self, data_dir: Path, max_bytes: int) -> None:
        self.data_dir = data_dir
        self.root = data_dir / "media"
        self.max_bytes = max_bytes

    def path_of(self, ref: str) -> Path:
        path = (self.data_dir / ref).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError("not a media reference")
        return path

    async def keep(self, declared_mime: str | None, chunks: AsyncIterator[bytes]) -> StoredMedia:
        """Store the streamed bytes if they pass the checks; raises MediaRejected otherwise."""
        mime = (declared_mime or "").split(";", 1)[0].strip().lower()
        mime = {"image/jpg": "image/jpeg", "audio/opus": "audio/ogg"}.get(mime, mime)
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        head = b""
        partial = self.root / f".incoming-{os.urandom(8).hex()}"
        try:
            if mime not in ALLOWED_TYPES:
                raise MediaRejected(f"type not allowed: {mime or 'unknown'}")
            with partial.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise MediaRejected(f"larger than {self.max_bytes} bytes")
                    if len(head) < 16:
                        head += chunk[: 16 - len(head)]
                    digest.update(chunk)
                    out.write(chunk)
            if size == 0:
                raise MediaRejected("empty")
            if not sniff_ok(mime, head):
                raise MediaRejected(f"content is not {mime}")
            sha = digest.hexdigest()
            ref = f"media/{sha}.{ALLOWED_TYPES[mime]}"
            os.replace(partial, self.data_dir / ref)  # same content, same name: a re-fetch is harmless
            return StoredMedia(ref, mime, size, sha)
        finally:
            partial.unlink(missing_ok=True)
            close = getattr(chunks, "aclose", None)  # a refused stream is not left open
            if close is not None:
                await close()

    async def keep_bytes(self, declared_mime: str | None, data: bytes) -> StoredMedia:
        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.keep(declared_mime, one())


class MediaFetcher(Protocol):
    """A connector that can fetch what its vendor only referenced (a URL needing credentials, a file id)."""

    async def fetch_media(self, attachment: dict[str, Any]) -> tuple[str | None, AsyncIterator[bytes]]: ...


@dataclass
class MediaHook:
    """Before the bot sees a message, its attachments are fetched and kept; the bot gets their references."""

    store: MediaStore
    db: Database
    fetchers: Mapping[str, MediaFetcher]

    async def __call__(self, conversation: Conversation, message: Message, text: str) -> Intercept | None:
        fetcher = self.fetchers.get(message.channel)
        attachments = (message.payload or {}).get("attachments") or []
        if fetcher is None or not any(not a.get("ref") and not a.get("rejected") for a in attachments):
            return None
        kept: list[dict[str, Any]] = []
        for attachment in attachments:
            item = dict(attachment)
            if not item.get("ref") and not item.get("rejected"):
                try:
                    mime, chunks = await fetcher.fetch_media(item)
                    stored = await self.store.keep(mime or item.get("mime"), chunks)
                    item.update(ref=stored.ref, mime=stored.mime, size=stored.size)
                    log.info("media.kept", message_id=message.id, ref=stored.ref, mime=stored.mime, size=stored.size)
                except MediaRejected as exc:
                    item["rejected"] = str(exc)
                    log.warning("media.rejected", message_id=message.id, reason=str(exc))
                except Exception as exc:  # the vendor's media server failed: keep its reference, answer anyway
                    item["rejected"] = f"fetch failed: {type(exc).__name__}"
                    log.warning("media.fetch_failed", message_id=message.id, error=repr(exc))
            kept.append(item)
        async with self.db.sessions() as session, session.begin():
            stored_message = await session.get(Message, message.id)
            if stored_message is not None:
                stored_message.payload = {**(stored_message.payload or {}), "attachments": kept}
        message.payload = {**(message.payload or {}), "attachments": kept}
        return None


# ---- links to stored media -------------------------------------------------------------------------------------------
# What an agent sends (a photo, a PDF) must be fetchable by the citizen's channel (Twilio, Telegram, the web chat), so
# it gets a public link that is unguessable and expires: an HMAC of the reference and the expiry, as signed URLs are.

LINK_SECONDS = 30 * 24 * 3600


def media_key(data_dir: Path, configured: str) -> bytes:
    """The key links are signed with: MEDIA_URL_SECRET, or a random one made once and kept in DATA_DIR (so every
    worker sharing DATA_DIR agrees, and links survive a restart)."""
    return installation_secret(data_dir, "media-url.key", configured).encode()


def _signature(key: bytes, name: str, expires: int) -> str:
    return hmac.new(key, f"{name}|{expires}".encode(), hashlib.sha256).hexdigest()[:40]


def media_link(base_url: str, ref: str, key: bytes, now: float, seconds: int = LINK_SECONDS) -> str:
    """A public, expiring link to a stored file (`ref` = media/<sha256>.<ext>)."""
    name = ref.removeprefix("media/")
    expires = int(now) + seconds
    return f"{base_url.rstrip('/')}/media/{name}?exp={expires}&sig={_signature(key, name, expires)}"


def link_valid(name: str, expires: int, signature: str, key: bytes, now: float) -> bool:
    return expires >= now and hmac.compare_digest(signature.encode(), _signature(key, name, expires).encode())


def mime_of(name: str) -> str:
    extension = name.rsplit(".", 1)[-1].lower()
    return next((mime for mime, ext in ALLOWED_TYPES.items() if ext == extension), "application/octet-stream")
