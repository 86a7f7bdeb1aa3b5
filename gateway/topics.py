"""The names of the coordination topics (pub/sub across workers) and locks the gateway and its features share."""

from __future__ import annotations

INBOX = "inbox"  # what the agents' desks follow: activity, status changes, failed deliveries, dead letters


def conversation(conversation_id: str) -> str:
    """One conversation's live events (new messages, typing, delivery ticks), and the name of its turn lock."""
    return f"conversation:{conversation_id}"
