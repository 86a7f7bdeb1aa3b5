"""The Slack desk: handoffs out to Slack threads, agents' replies and button presses back in.

Outbound (render + send): the desk follows the inbox's pub/sub topic; when a conversation waits for a person it
posts a root message (with Claim and Resolve buttons) and the history as the thread's first reply, then every later
message of the conversation, in order and once — a per-conversation lock and the thread's `last_message_id` make
that hold with several workers. Inbound (verify + parse): Bolt checks Slack's signature on every request; a human's
reply in a handoff thread goes to the citizen, Claim and Resolve go to the handoff service. Slack redelivers events
it thinks were missed, so each event id is handled once.

Every signed request is acknowledged (2xx), also the events and interactions the desk has no use for (a member
joined, a reaction, an edit, a shortcut): Slack retries what is not acknowledged and turns off an app's events when
most deliveries fail. Only the signature (401) and a body Slack would never send (400) are refused.

When Slack says the desk's token is gone (`tokens_revoked` for our bot, `app_uninstalled`, or an API answer such as
`token_revoked` / `invalid_auth`), the desk stops: no more posts or retries, one structured log line, and `state`
says why (readiness reports it). Citizens are still served: handoffs wait in the web inbox. The stop is shared with
the other workers through coordination, keyed by the token, so a new token (a reinstall) starts afresh.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from gateway.coordination import Coordination
from gateway.storage import Conversation, Database, Message
from handoff.context import PERSON_STATUSES, TOPIC
from handoff.slack.store import SlackThread

log = structlog.get_logger(__name__)

SLACK_API = "https://slack.com/api/"
VIA_SLACK = "slack"  # marks an agent message that came from a Slack thread (it is not echoed back there)
SENDER_MARK = {"citizen": "👤", "bot": "🤖", "agent": "🧑‍💼", "system": "⚙️"}
STATUS_LABEL = {
    "pending": "⏳ waiting for a person", "open": "💬 open", "resolved": "✅ resolved", "bot": "🤖 back to the bot",
}
# Slack's answers meaning the token will never work again (revoked, app uninstalled or deactivated): the desk stops.
DEAD_TOKEN_ERRORS = frozenset({"token_revoked", "invalid_auth", "account_inactive", "token_expired", "not_authed"})
# Message subtypes that are still a person writing in the thread (a reply also sent to the channel, one with files).
REPLY_SUBTYPES = (None, "thread_broadcast", "file_share")
DeskState = Literal["ok", "revoked", "uninstalled"]


@dataclass(frozen=True)
class SlackUser:
    id: str
    name: str
    email: str | None = None


class DeskActions(Protocol):
    """What a Slack agent may do to a conversation; each returns None when done, else why not (shown in Slack)."""

    async def claim(self, conversation_id: str, user: SlackUser) -> str | None: ...

    async def resolve(self, conversation_id: str, user: SlackUser) -> str | None: ...

    async def reply(self, conversation_id: str, user: SlackUser, text: str) -> str | None: ...


def slack_error(exc: SlackApiError) -> str:
    """Slack's error code ("channel_not_found" …), or the HTTP status when Slack answered no JSON at all."""
    data = exc.response.data
    if isinstance(data, dict):
        return str(data.get("error"))
    return f"http {exc.response.status_code}"


def escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped as Slack asks (a citizen's '<' is not a link)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _from_slack(message: Message) -> bool:
    return bool(((message.payload or {}).get("meta") or {}).get("via") == VIA_SLACK)


def render_message(message: Message) -> str:
    """One conversation message as one Slack line, showing what the citizen saw (buttons, images, attachments)."""
    payload = message.payload or {}
    mark = SENDER_MARK.get(message.sender, "•")
    parts = [escape(message.text or "")] if message.text else []
    for number, button in enumerate(payload.get("buttons") or (), start=1):
        parts.append(f"  [{number}] {escape(str(button.get('title', '')))}")
    if payload.get("image"):
        parts.append(f"  🖼 {payload['image']}")
    for attachment in payload.get("attachments") or ():
        label = attachment.get("name") or attachment.get("kind") or "attachment"
        parts.append(f"  📎 {escape(str(label))}")
    if payload.get("location"):
        where = payload["location"]
        parts.append(f"  📍 {where.get('latitude')}, {where.get('longitude')} {escape(where.get('label') or '')}")
    body = "\n".join(parts) if parts else "(empty)"
    return f"{mark} *{message.sender}*: {body}"


def render_root(conversation: Conversation, status: str, note: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The thread's root: who, where, status, and the buttons while a person is still needed."""
    label = STATUS_LABEL.get(status, status)
    text = f"Handoff · {conversation.channel} · {conversation.language} · {label}"
    if note:
        text += f" · {note}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{escape(text)}*\nconversation `{conversation.id}`"}}
    ]
    if status in PERSON_STATUSES:
        elements = []
        if status == "pending":
            elements.append({"type": "button", "action_id": "handoff_claim", "style": "primary",
                             "text": {"type": "plain_text", "text": "Claim"}, "value": conversation.id})
        elements.append({"type": "button", "action_id": "handoff_resolve", "style": "danger",
                         "text": {"type": "plain_text", "text": "Resolve"}, "value": conversation.id})
        blocks.append({"type": "actions", "block_id": "handoff", "elements": elements})
    return text, blocks


class SlackDesk:
    """Built from settings by the app factory; `follow()` runs as a background task, `app` serves the route."""

    def __init__(self, *, token: str, signing_secret: str, channel: str, db: Database, coordination: Coordination,
                 actions: DeskActions, api_base_url: str = "", sweep_seconds: float = 30.0) -> None:
        self.channel = channel
        self.db = db
        self.coordination = coordination
        self.actions = actions
        self.sweep_seconds = sweep_seconds
        self.state: DeskState = "ok"
        self.bot_user_id: str | None = None  # learnt from auth.test when a tokens_revoked event must be matched
        self.verifier = SignatureVerifier(signing_secret)
        # Shared by the workers; named by the token (hashed: a key name is no place for a secret).
        self._stop_key = f"slack:desk:stopped:{hashlib.sha256(token.encode()).hexdigest()[:16]}"
        self._follower: asyncio.Task[Any] | None = None
        base = api_base_url or SLACK_API
        self.client = AsyncWebClient(token=token, base_url=base if base.endswith("/") else base + "/")
        # Handled before the answer goes back: every step is a short database write, well inside Slack's 3 s.
        # Unhandled requests raise into `_on_error`, which acknowledges them (Bolt's default answers 404).
        self.app = AsyncApp(signing_secret=signing_secret, client=self.client, process_before_response=True,
                            raise_error_for_unhandled_request=True)
        self.app.event("message")(self._on_message)
        self.app.event("tokens_revoked")(self._on_tokens_revoked)
        self.app.event("app_uninstalled")(self._on_app_uninstalled)
        self.app.action("handoff_claim")(self._on_claim)
        self.app.action("handoff_resolve")(self._on_resolve)
        self.app.error(self._on_error)

    # ---- verify -------------------------------------------------------------------------------------------------

    def signed(self, body: bytes, timestamp: str | None, signature: str | None) -> bool:
        """Slack's request signature (slack_sdk's check: HMAC of the body, timestamp within 5 minutes).

        Never raises: slack_sdk's own check does on a timestamp that is not a number or a body that is not UTF-8,
        and a stranger's request must not become a 500.
        """
        if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit():
            return False
        try:
            return bool(self.verifier.is_valid(body, timestamp, signature))
        except (ValueError, TypeError):  # UnicodeDecodeError; a non-ASCII signature in compare_digest
            return False

    # ---- stopping: the token is gone ------------------------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        return self.state != "ok"

    async def stop(self, state: DeskState, reason: str, *, share: bool = True) -> None:
        """Stop posting to Slack for good (until a restart with another token); idempotent."""
        if self.stopped or state == "ok":
            return
        self.state = state
        log.warning("slack.desk_stopped", state=state, reason=reason, channel=self.channel,
                    hint="handoffs still wait in the web inbox; reinstall the Slack app and set SLACK_BOT_TOKEN")
        if share:
            try:  # no expiry: this token will never work again, and a new token is another key
                await self.coordination.set(self._stop_key, state)
            except Exception as exc:  # noqa: BLE001 - the other workers find out from Slack's own answers
                log.warning("slack.desk_stop_not_shared", error=repr(exc))
        follower = self._follower
        if follower is not None and follower is not asyncio.current_task() and not follower.done():
            follower.cancel()  # it may be waiting for the next sweep; `follow` ends quietly

    async def _stopped_elsewhere(self) -> bool:
        """Another worker stopped its desk for this token: stop this one too."""
        if not self.stopped:
            shared = await self.coordination.get(self._stop_key)
            if shared is not None:
                state: DeskState = "uninstalled" if shared == "uninstalled" else "revoked"
                await self.stop(state, "stopped by another worker", share=False)
        return self.stopped

    async def _dead_token(self, exc: SlackApiError) -> bool:
        """True (and the desk stopped) when Slack's answer says the token will never work again."""
        error = slack_error(exc)
        if error in DEAD_TOKEN_ERRORS:
            await self.stop("revoked", f"Slack answered {error}")
            return True
        return False

    # ---- outbound: the conversation into its thread --------------------------------------------------------------

    async def follow(self) -> None:
        """Mirror conversations into Slack as they change; a periodic sweep catches what a lost event missed.

        Runs for the app's life: a failure (the database or Redis away for a moment) restarts the loop after a pause.
        """
        self._follower = asyncio.current_task()
        while not self.stopped:
            try:
                await self._follow()
            except asyncio.CancelledError:
                if self.stopped:  # `stop` cancelled the wait: end here, not as a failure
                    task = asyncio.current_task()
                    if task is not None:
                        task.uncancel()
                    return
                raise
            except Exception as exc:  # noqa: BLE001 - the desk must outlive a passing outage
                log.error("slack.follow_failed", error=repr(exc))
                await asyncio.sleep(min(self.sweep_seconds, 5.0))

    async def _follow(self) -> None:
        await self.sweep()
        async with self.coordination.subscribe(TOPIC) as subscription:
            loop = asyncio.get_running_loop()
            next_sweep = loop.time() + self.sweep_seconds
            while not self.stopped:
                event = await subscription.get(timeout=max(0.1, next_sweep - loop.time()))
                if event is not None and event.get("conversation_id"):
                    await self._sync_safely(str(event["conversation_id"]))
                if loop.time() >= next_sweep:
                    await self.sweep()
                    next_sweep = loop.time() + self.sweep_seconds

    async def sweep(self) -> None:
        if await self._stopped_elsewhere():
            return
        async with self.db.sessions() as session:
            waiting = (await session.execute(
                select(Conversation.id).where(Conversation.status.in_(PERSON_STATUSES))
            )).scalars().all()
            threaded = (await session.execute(
                select(SlackThread.conversation_id).where(SlackThread.status.in_(PERSON_STATUSES))
            )).scalars().all()
        for conversation_id in dict.fromkeys([*waiting, *threaded]):
            if self.stopped:
                return
            await self._sync_safely(conversation_id)

    async def _sync_safely(self, conversation_id: str) -> None:
        try:
            await self.sync(conversation_id)
        except SlackApiError as exc:  # Slack down or refusing: the next event or sweep tries again
            if not await self._dead_token(exc):
                log.warning("slack.sync_failed", conversation_id=conversation_id, error=slack_error(exc))
        except Exception as exc:  # noqa: BLE001 - one bad conversation must not stop the desk
            log.error("slack.sync_failed", conversation_id=conversation_id, error=repr(exc))

    async def sync(self, conversation_id: str) -> None:
        """Bring one conversation's thread up to date (idempotent; safe to call from every worker)."""
        if self.stopped:
            return
        async with self.coordination.lock(f"slack:thread:{conversation_id}", hold_seconds=30, wait_seconds=30):
            if self.stopped:  # stopped while this waited for the lock (the holder's post was refused)
                return
            async with self.db.sessions() as session:
                conversation = await session.get(Conversation, conversation_id)
                thread = await session.get(SlackThread, conversation_id)
            if conversation is None:
                return
            if thread is None:
                if conversation.status not in PERSON_STATUSES:
                    return  # back with the bot before its thread was opened: nothing for a person to do
                thread = await self._open_thread(conversation)
            await self._post_new_messages(thread)
            if thread.status != conversation.status:
                await self._status_changed(conversation, thread)

    async def _open_thread(self, conversation: Conversation) -> SlackThread:
        text, blocks = render_root(conversation, conversation.status)
        response = await self.client.chat_postMessage(channel=self.channel, text=text, blocks=blocks)
        thread = SlackThread(conversation_id=conversation.id, channel=str(response["channel"]),
                             thread_ts=str(response["ts"]), last_message_id=0, status=conversation.status)
        async with self.db.sessions() as session, session.begin():
            session.add(thread)
        log.info("slack.thread_opened", conversation_id=conversation.id, thread_ts=thread.thread_ts)
        return thread

    async def _post_new_messages(self, thread: SlackThread) -> None:
        while True:
            async with self.db.sessions() as session:
                messages: Sequence[Message] = (await session.execute(
                    select(Message).where(Message.conversation_id == thread.conversation_id,
                                          Message.id > thread.last_message_id)
                    .order_by(Message.id).limit(50)
                )).scalars().all()
            if not messages or self.stopped:  # stopped meanwhile (an event on this worker): not another post
                return
            lines = [render_message(m) for m in messages if not _from_slack(m)]
            if lines:
                await self.client.chat_postMessage(channel=thread.channel, thread_ts=thread.thread_ts,
                                                   text="\n".join(lines), unfurl_links=False, unfurl_media=False)
            thread.last_message_id = messages[-1].id
            async with self.db.sessions() as session, session.begin():
                row = await session.get(SlackThread, thread.conversation_id)
                if row is not None:
                    row.last_message_id = thread.last_message_id

    async def _status_changed(self, conversation: Conversation, thread: SlackThread) -> None:
        text, blocks = render_root(conversation, conversation.status)
        await self.client.chat_update(channel=thread.channel, ts=thread.thread_ts, text=text, blocks=blocks)
        await self.client.chat_postMessage(channel=thread.channel, thread_ts=thread.thread_ts,
                                           text=f"⚙️ {STATUS_LABEL.get(conversation.status, conversation.status)}")
        async with self.db.sessions() as session, session.begin():
            row = await session.get(SlackThread, thread.conversation_id)
            if row is not None:
                row.status = conversation.status
        thread.status = conversation.status

    # ---- inbound: Slack into the handoff ---------------------------------------------------------------------------

    async def _on_message(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        # Acknowledged whatever happens here: Slack's redelivery would find the event id taken and change nothing,
        # so a failure is logged and, where there is a thread, told to the agent in it.
        try:
            await self._thread_reply(event, body)
        except Exception as exc:  # noqa: BLE001
            log.error("slack.reply_failed", event_id=body.get("event_id"), error=repr(exc))

    async def _thread_reply(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        thread_ts = event.get("thread_ts")
        # Only a person's reply inside one of our threads (not the root, not edits or joins, not bots) is for a
        # citizen.
        if (self.stopped or event.get("channel") != self.channel or not isinstance(thread_ts, str) or not thread_ts
                or thread_ts == event.get("ts") or event.get("subtype") not in REPLY_SUBTYPES
                or event.get("bot_id") or not isinstance(event.get("user"), str) or not event.get("user")):
            return
        if not await self._first_time(body):
            return
        thread = await self._thread_by_ts(thread_ts)
        if thread is None:
            return
        if event.get("subtype") == "file_share" or event.get("files"):
            await self._note(thread, "⚠️ files are not sent to the citizen: only the text is")
        user = await self._user(str(event["user"]))
        text = str(event.get("text") or "").strip()
        if not text:
            return
        try:
            problem = await self.actions.reply(thread.conversation_id, user, text)
        except Exception as exc:  # noqa: BLE001 - the agent must know the citizen did not get it
            log.error("slack.reply_failed", conversation_id=thread.conversation_id, error=repr(exc))
            problem = "the gateway could not store it, please send it again"
        if problem:
            await self._note(thread, f"⚠️ not sent to the citizen: {problem}")

    async def _on_tokens_revoked(self, event: dict[str, Any]) -> None:
        tokens = event.get("tokens")
        listed = tokens.get("bot") if isinstance(tokens, dict) else None
        bots = [str(b) for b in listed] if isinstance(listed, list) else []
        if not bots:  # only users' OAuth tokens: the desk posts with the bot token
            log.info("slack.tokens_revoked_not_ours", bots=[])
            return
        if await self._is_our_bot(bots):
            await self.stop("revoked", "tokens_revoked event for the bot token")
        else:
            log.info("slack.tokens_revoked_not_ours", bots=bots)

    async def _is_our_bot(self, bots: list[str]) -> bool:
        if self.bot_user_id is None and not self.stopped:
            try:
                self.bot_user_id = str((await self.client.auth_test())["user_id"])
            except SlackApiError:
                # Already dead (or Slack unreachable): a workspace has one bot user per app, and the event comes
                # signed for this app, so a bot token revoked there is ours.
                return True
        return self.bot_user_id in bots

    async def _on_app_uninstalled(self) -> None:
        await self.stop("uninstalled", "app_uninstalled event")

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> BoltResponse:
        """Bolt's own failures. Unhandled requests are acknowledged; the rest is Bolt unable to read the body.

        The desk's listeners catch their own failures, so what arrives here comes from Bolt's matching and argument
        building on a signed body with an unexpected shape: answered 400 (a 500 would have Slack retry it).
        """
        kind = body.get("type") if isinstance(body, dict) else None
        if isinstance(error, BoltUnhandledRequestError):
            event = body.get("event") if isinstance(body, dict) else None
            log.debug("slack.ignored", type=kind,
                      event_type=event.get("type") if isinstance(event, dict) else None)
            return BoltResponse(status=200, body="")
        log.warning("slack.unreadable", type=kind, error=repr(error))
        return BoltResponse(status=400, body="not a Slack request this desk can read")

    async def _on_claim(self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        await self._button(body, action, self.actions.claim)

    async def _on_resolve(self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        await self._button(body, action, self.actions.resolve)

    async def _button(self, body: dict[str, Any], action: dict[str, Any], do: Any) -> None:
        if self.stopped:
            return
        try:
            await self._press(body, action, do)
        except Exception as exc:  # noqa: BLE001 - acknowledged already; logged, the agent may press again
            log.error("slack.button_failed", action=action.get("action_id"), error=repr(exc))

    async def _press(self, body: dict[str, Any], action: dict[str, Any], do: Any) -> None:
        conversation_id = str(action.get("value") or "")
        who = body.get("user")
        user = await self._user(str((who.get("id") if isinstance(who, dict) else None) or ""))
        problem = await do(conversation_id, user)
        async with self.db.sessions() as session:
            thread = await session.get(SlackThread, conversation_id)
        if thread is None:
            return
        if problem:
            await self._note(thread, f"⚠️ {escape(user.name)}: {problem}")
        else:
            await self._note(thread, f"⚙️ {action.get('action_id', '').removeprefix('handoff_')} by <@{user.id}>")
        await self._sync_safely(conversation_id)

    async def _first_time(self, body: dict[str, Any]) -> bool:
        event_id = body.get("event_id")
        if not event_id:
            return True
        return await self.coordination.first_seen(f"slack:event:{event_id}", 86400)

    async def _thread_by_ts(self, thread_ts: str) -> SlackThread | None:
        async with self.db.sessions() as session:
            return (await session.execute(
                select(SlackThread).where(SlackThread.thread_ts == thread_ts)
            )).scalar_one_or_none()

    async def _note(self, thread: SlackThread, text: str) -> None:
        if self.stopped:
            return
        try:
            await self.client.chat_postMessage(channel=thread.channel, thread_ts=thread.thread_ts, text=text)
        except SlackApiError as exc:
            if not await self._dead_token(exc):
                log.warning("slack.note_failed", error=slack_error(exc))

    async def _user(self, user_id: str) -> SlackUser:
        """Who pressed or wrote (name and e-mail from users.info, cached an hour; the id alone if Slack says no)."""
        key = f"slack:user:{user_id}"
        cached = await self.coordination.get(key)
        if cached:
            data = json.loads(cached)
            return SlackUser(user_id, data["name"], data.get("email"))
        try:
            info = (await self.client.users_info(user=user_id))["user"]
        except SlackApiError:
            return SlackUser(user_id, user_id)
        profile = info.get("profile") or {}
        user = SlackUser(user_id, profile.get("display_name") or info.get("real_name") or info.get("name") or user_id,
                         profile.get("email"))
        await self.coordination.set(key, json.dumps({"name": user.name, "email": user.email}), ttl_seconds=3600)
        return user

    async def close(self) -> None:
        session = getattr(self.client, "session", None)
        if session is not None:
            await session.close()
