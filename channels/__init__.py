"""The citizens' channels: one folder per channel, each exporting one `CHANNEL` (gateway/connectors.py says what it
is: its settings, its connector with the same four parts — verify, parse, render, send — its routes and what else
it brings). A new channel is a new folder and its name below.
"""

from __future__ import annotations

from importlib import import_module

from gateway.connectors import ChannelPlugin

NAMES = ("rest", "webchat", "sms", "telegram", "wechat", "email", "voice")


def plugins() -> tuple[ChannelPlugin, ...]:
    """Every channel the gateway knows, in the order their routes are served."""
    return tuple(import_module(f"channels.{name}").CHANNEL for name in NAMES)
