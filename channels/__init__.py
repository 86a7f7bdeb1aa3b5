"""Channel connectors: one folder per channel, each with the same four parts (verify, parse, render, send).

The normalized message in `channels.base` is the one currency between connectors and the rest of the gateway.
"""

from channels.base import (
    Attachment,
    Button,
    Capabilities,
    DeliveryResult,
    InboundMessage,
    Location,
    OutboundMessage,
)

__all__ = [
    "Attachment",
    "Button",
    "Capabilities",
    "DeliveryResult",
    "InboundMessage",
    "Location",
    "OutboundMessage",
]
