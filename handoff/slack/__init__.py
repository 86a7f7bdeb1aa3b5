"""Slack as a second desk for agents (slack-bolt).

Each handoff becomes a thread in one Slack channel with the conversation's history; the citizen's later messages
follow in the thread; an agent's reply in the thread reaches the citizen on their own channel; buttons claim or
resolve. Slack is not a citizen channel: it has the same four parts, turned around — verify (Slack's request
signature, by Bolt), parse (Slack events and button presses into desk actions), render (conversation messages into
Slack text and blocks), send (the Web API).
"""

from handoff.slack.desk import DeskActions, SlackDesk, SlackUser
from handoff.slack.routes import build_router

__all__ = ["DeskActions", "SlackDesk", "SlackUser", "build_router"]
