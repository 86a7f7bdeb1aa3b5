"""Fixtures of the attack tests, borrowed from the suites they attack: the channel tests' stand-in of Rasa's
gateway channel, the work-order tests' clock."""

from tests.channels.conftest import rasa
from tests.crm_adapter.conftest import clock

__all__ = ["clock", "rasa"]
