"""A private Request Tracker 5 (Debian's request-tracker5, SQLite, standalone server) for the RT adapter tests.

Recipe from ../shared/notes/request-tracker.md: site config in a directory of our own (RT_SITE_CONFIG_DIR too, or
Debian's config silently wins), `rt-setup-database` init + insert of our queues and custom fields, an API token made
in Perl, then `rt-server --server Standalone`, stopped with SIGTERM.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

RT_SETUP = "/usr/sbin/rt-setup-database"
RT_SERVER = "/usr/share/request-tracker5/libexec/rt-server"


@dataclass
class RtInstance:
    url: str
    token: str
    directory: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # SIGINT as root would chown Debian's var dir
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def rt_available() -> bool:
    return Path(RT_SETUP).exists() and Path(RT_SERVER).exists()


def _site_config(directory: Path, port: int) -> str:
    return f"""
Set($rtname,'rt.test'); Set($Organization,'rt.test'); Set($Timezone,'UTC');
Set($CorrespondAddress,'rt@rt.test'); Set($CommentAddress,'rt-comment@rt.test');
Set($DatabaseType,'SQLite'); Set($DatabaseName,'{directory}/rt.db');
Set($WebDomain,'127.0.0.1'); Set($WebPort,{port}); Set($WebPath,'');
Set($MailCommand,'mbox'); Set($LogToSyslog,undef); Set($LogToSTDERR,'warning');
Set($BcryptCost,4);
$RT::MasonDataDir='{directory}/var/mason_data'; $RT::MasonSessionDir='{directory}/var/session_data';
$RT::VarPath='{directory}/var';
1;
"""


def _initialdata(queues: list[str], token_file: Path) -> str:
    queue_items = ",\n".join(f"  {{ Name => '{q}', Description => 'work orders: {q}' }}" for q in queues)
    # Global ticket custom fields (Queue => 0): a field not applied to the ticket's queue is dropped silently.
    fields = ",\n".join(
        f"  {{ Name => '{name}', Type => 'FreeformSingle', "
        f"LookupType => 'RT::Queue-RT::Ticket', Queue => 0 }}"
        for name in ("Category", "Channel", "WorkOrderNumber")
    )
    return f"""
@Queues = (
{queue_items}
);
@CustomFields = (
{fields}
);
@Final = (sub {{
  # No mail goes anywhere in tests; the notification scrips only cost time on every create.
  my $scrips = RT::Scrips->new(RT->SystemUser);
  $scrips->UnLimit;
  while (my $scrip = $scrips->Next) {{
    $scrip->SetDisabled(1) if ($scrip->Description // '') =~ /Notify|Autoreply/;
  }}
  # The gateway's API token for root (REST 2.0 `Authorization: token ...`), made here to save a Perl start-up.
  my $root = RT::User->new(RT->SystemUser); $root->Load('root');
  my $auth = RT::AuthToken->new(RT->SystemUser);
  my ($ok, $msg, $token) = $auth->Create(Owner => $root->Id, Description => 'gateway');
  die "token: $msg" unless $ok;
  open(my $fh, '>', '{token_file}') or die $!; print $fh $token; close $fh;
}});
1;
"""


def _env(directory: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "RT_SITE_CONFIG": str(directory / "etc" / "RT_SiteConfig.pm"),
        "RT_SITE_CONFIG_DIR": str(directory / "etc" / "RT_SiteConfig.d"),
    }


def initialise(directory: Path, queues: list[str], port: int) -> str:
    """Create the RT database with our queues and custom fields; return an API token for root."""
    (directory / "etc" / "RT_SiteConfig.d").mkdir(parents=True, exist_ok=True)
    for sub in ("var/mason_data", "var/session_data"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    (directory / "etc" / "RT_SiteConfig.pm").write_text(_site_config(directory, port))
    token_file = directory / "token"
    (directory / "initialdata.pl").write_text(_initialdata(queues, token_file))
    env = _env(directory)
    run = {"env": env, "stdin": subprocess.DEVNULL, "capture_output": True, "check": True, "timeout": 120}
    subprocess.run([RT_SETUP, "--action", "init"], **run)  # type: ignore[call-overload]
    subprocess.run(  # type: ignore[call-overload]
        [RT_SETUP, "--action", "insert", "--datafile", str(directory / "initialdata.pl")], **run
    )
    return token_file.read_text().strip()


def start(directory: Path, port: int, token: str, timeout: float = 60) -> RtInstance:
    log = (directory / "rt-server.log").open("ab")
    process = subprocess.Popen(
        [RT_SERVER, "--server", "Standalone", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(directory),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"rt-server exited: {(directory / 'rt-server.log').read_text()[-2000:]}")
        try:
            r = httpx.get(f"{url}/REST/2.0/rt", headers={"Authorization": f"token {token}"}, timeout=2)
            if r.status_code == 200:
                return RtInstance(url, token, directory, process)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("rt-server did not become ready")


def prepare(directory: Path, queues: list[str], port: int) -> str:
    """Set up an instance in `directory`; the initialised database is cached (keyed by RT's version and our
    initial data) in the system temp dir, so only the first session on a machine pays for `rt-setup-database`."""
    key_source = _initialdata(queues, Path("TOKEN")) + _rt_version()
    cache = (
        Path(tempfile.gettempdir()) / "crm-rt-cache" / hashlib.sha256(key_source.encode()).hexdigest()[:16]
    )
    if not (cache / "rt.db").exists() or not (cache / "token").exists():
        building = cache.with_name(cache.name + f".{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        initialise(building, queues, port)
        try:
            building.rename(cache)  # atomic: a concurrent session either sees all of it or builds its own
        except OSError:
            shutil.rmtree(building, ignore_errors=True)
    for sub in ("etc/RT_SiteConfig.d", "var/mason_data", "var/session_data"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    (directory / "etc" / "RT_SiteConfig.pm").write_text(_site_config(directory, port))
    shutil.copyfile(cache / "rt.db", directory / "rt.db")  # every session starts from the clean database
    return (cache / "token").read_text().strip()


def _rt_version() -> str:
    try:
        return subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "request-tracker5"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
