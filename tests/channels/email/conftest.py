"""Fixtures of the e-mail tests: a real Dovecot IMAP server (one per session, a fresh mailbox per test), a real
SMTP server (aiosmtpd) recording what it accepted, and DKIM signing keys made for the run (dkimkeys.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.channels.email.dkimkeys import DkimKeys
from tests.channels.email.mailservers import Dovecot, SmtpServer, dovecot_available


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    if not dovecot_available():
        pytest.fail("dovecot is not installed: `make system-deps` (Debian's dovecot-imapd)")
    server = Dovecot.start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> str:
    """The login of a fresh, empty mailbox on the Dovecot server."""
    return dovecot.new_user()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dkim_keys() -> DkimKeys:
    """Signing keys made for this run and the DNS function that publishes them (no network)."""
    return DkimKeys()
