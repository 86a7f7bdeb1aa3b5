"""The turn, in one place: the hooks every citizen's message runs through before the bot, in this order, the
observers after it, and where stored replies go. Nothing else registers a hook.

Before the bot (each may answer the turn itself or hand the bot other text; the first to answer ends it):
1. contacts: a phone a connector verified merges this contact with the one that has it (gateway/contacts.py), so
   everything after sees the one citizen;
2. media: attachments the vendor only referenced are fetched and kept, the bot sees references (gateway/media.py);
3. opt-outs: STOP / 退订, START / 订阅 on a pushing channel, never sent to the bot (gateway/optouts.py);
4. numbered replies: "2" on a channel without buttons becomes the second button's payload
   (gateway/numbered_replies.py);
5. the channels' own hooks (WeChat: a new follower is welcomed, silent events are only stored);
6. the handoff: the satisfaction survey's answer, the out-of-hours choices, unread counts for agents
   (handoff/triggers.py), after 4 so that "1" is already the button it means.
Then, unless a person has the conversation, the bot (Rasa).

After the bot, in the turn's transaction: the handoff's triggers (handoff/triggers.py: a request for a person, not
understood twice, an urgent report), which may hand the conversation to a person and tell the citizen where they
wait.

Stored replies of a pushing channel go to the outbox (which first lets the channel take them: WeChat's passive
reply); the other channels read theirs from storage.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.connectors import BuiltChannel
from gateway.contacts import ContactMergeHook
from gateway.media import MediaHook, MediaStore
from gateway.numbered_replies import NumberedReplies
from gateway.optouts import OptOutHook
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from gateway.storage import Database
from handoff.service import HandoffService


def wire_turns(pipeline: Pipeline, db: Database, outbox: Outbox, channels: Mapping[str, BuiltChannel],
               media: MediaStore, handoff: HandoffService) -> None:
    """Give the pipeline its hooks, in the order the module docstring explains, and its delivery."""
    capabilities = {name: channel.connector.capabilities for name, channel in channels.items()}
    fetchers = {name: connector for name, connector in outbox.connectors.items() if connector.capabilities.media}
    pipeline.use(
        before=[
            ContactMergeHook(db),
            MediaHook(media, db, fetchers),
            OptOutHook(db, capabilities),
            NumberedReplies(db, capabilities),
            *(hook for channel in channels.values() for hook in channel.before_turn),
            handoff.before_turn,
        ],
        after=[handoff.after_turn],
        delivery=outbox,
    )
