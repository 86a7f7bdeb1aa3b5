"""The outbox: every message to a pushing channel (SMS, Telegram, WeChat, e-mail) is stored, sent by a worker,
retried and tracked.

- The pipeline stores replies for these channels with delivery_state "queued" in the turn's own transaction, so a
  crash after the bot answered still sends them. The worker expands each queued message into outbox rows (one per
  vendor call: an SMS part, a Telegram text or photo), rendered by the channel's connector.
- Order: per recipient only the oldest unfinished row may be sent; later replies wait behind it (also while it
  waits for a retry). Other recipients are not held up: heads of different recipients are sent concurrently.
- Exactly one sender per row across workers: a row is claimed with a conditional UPDATE and a lease; a worker that
  dies mid-send leaves the lease to expire and the row is sent again (at least once; vendors have no idempotency).
- Retries: exponential backoff with jitter on errors, Retry-After honoured on 429, "failed" after the last try —
  stored on the message (delivery_state, payload.delivery_error) and announced on the inbox topic for agents.
- Receipts (Twilio status callbacks, WeChat template receipts, bounces) move rows and their message to sent /
  delivered / failed.
- Proactive messages (work-order notices, the 回访): `Outbox.enqueue_proactive`, respecting opt-outs
  (gateway/optouts.py) and each channel's reply window.

Parts: `tables` (the rows), `proactive` (what may be sent first, and how), `worker` (expand, send, retry, receipts,
replies a channel answers itself).
"""

from gateway.outbox.proactive import ProactiveResult
from gateway.outbox.tables import OutboxRow
from gateway.outbox.worker import Outbox, RetryPolicy

__all__ = ["Outbox", "OutboxRow", "ProactiveResult", "RetryPolicy"]
