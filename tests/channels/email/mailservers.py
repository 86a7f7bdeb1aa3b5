"""Real mail servers for the e-mail tests and the benchmark: Debian's Dovecot (IMAP) and aiosmtpd (SMTP).

Dovecot runs as a child process with a temporary configuration: a free port on 127.0.0.1, plaintext login allowed
(loopback only), a passwd-file of test users (one mailbox per test), Maildir under a temporary folder, its run and
state folders there too. Run by a normal user it runs entirely as that user; run by root (CI containers) its login
and internal processes use Debian's unprivileged `dovenull` / `dovecot` users, as Dovecot requires.
aiosmtpd's Controller records every message it accepts and can refuse the next ones with a 451 (try later).
"""

from __future__ import annotations

import imaplib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from app.launch import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "test-password"
USERS = 500


def dovecot_available() -> bool:
    return Path(DOVECOT).exists()


@dataclass
class Dovecot:
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    _users: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def start(cls) -> Dovecot:
        root = Path(tempfile.mkdtemp(prefix="dovecot-test-"))
        server = cls(root, free_port())
        server._configure()
        server.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {server.log()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return server
            except OSError:
                time.sleep(0.05)
        server.stop()
        raise RuntimeError(f"dovecot did not start: {server.log()[-2000:]}")

    def _configure(self) -> None:
        me = pwd.getpwuid(os.getuid())
        if os.getuid() == 0:  # Dovecot refuses to run its login processes as root
            login, internal, mail = "dovenull", "dovecot", pwd.getpwnam("dovecot")
        else:
            login = internal = me.pw_name
            mail = me
        (self.root / "mail").mkdir()
        # Every mailbox is made up front: Dovecot re-reads a changed passwd-file by its mtime (whole seconds), so
        # a user added in the same second as the last one could be refused.
        (self.root / "passwd").write_text("".join(f"{self._login(i)}:{{PLAIN}}{PASSWORD}\n" for i in range(USERS)))
        os.chmod(self.root, 0o755)
        os.chown(self.root / "mail", mail.pw_uid, mail.pw_gid)
        config = f"""
protocols = imap
listen = 127.0.0.1
base_dir = {self.root}/run
state_dir = {self.root}/state
instance_name = dovecot-test-{self.port}
default_login_user = {login}
default_internal_user = {internal}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {self.root}/dovecot.log
first_valid_uid = 1
mail_location = maildir:{self.root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail.pw_uid} gid={mail.pw_gid} home={self.root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""
        if os.getuid() != 0:  # rootless: every service runs as the one user there is
            config += "".join(f"service {name} {{\n  user = {me.pw_name}\n}}\n"
                              for name in ("auth", "auth-worker", "config", "log", "stats", "dict"))
        (self.root / "dovecot.conf").write_text(config)

    @staticmethod
    def _login(number: int) -> str:
        return f"city{number}@binjiang.example"

    def new_user(self) -> str:
        """A fresh, empty mailbox (its login); the password is PASSWORD."""
        number = next(self._users)
        if number >= USERS:
            raise RuntimeError("out of test mailboxes")
        return self._login(number)

    def client(self, user: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        imap.login(user, PASSWORD)
        return imap

    def append(self, user: str, *messages: bytes, folder: str = "INBOX", received: float | None = None) -> list[int]:
        """IMAP APPEND each message (`received`: its INTERNALDATE as a Unix time); returns their UIDs (UIDPLUS)."""
        uids = []
        imap = self.client(user)
        try:
            for raw in messages:
                when = imaplib.Time2Internaldate(received) if received is not None else None
                status, data = imap.append(folder, None, when, raw)
                assert status == "OK", data
                code = imap.response("APPENDUID")[1]
                uids.append(int(code[0].split()[1]) if code and code[0] else 0)
        finally:
            imap.logout()
        return uids

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


class SmtpRecorder:
    """aiosmtpd handler: keeps what it accepted; `refuse_next` messages get 451 (a temporary failure) first."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.attempts = 0
        self.refuse_next = 0

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.refuse_next > 0:
            self.refuse_next -= 1
            return "451 4.3.0 Mail server temporarily rejected message, try again later"
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 2.0.0 OK queued"


@dataclass
class SmtpServer:
    controller: Controller
    recorder: SmtpRecorder

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @classmethod
    def start(cls) -> SmtpServer:
        recorder = SmtpRecorder()
        controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
        controller.start()
        return cls(controller, recorder)

    def stop(self) -> None:
        self.controller.stop()
