"""Schemathesis' generated cases sent to a live gateway from inside one test (no collection-time server).

`Sweep.run(operation, ...)` draws cases for one OpenAPI operation with Hypothesis (valid ones, then invalid ones when
the operation has anything that can be invalid), sends each with the caller's headers, and hands every answer to a
judge. The judge's verdicts are collected, never raised inside Hypothesis: nothing is shrunk, every offence is kept
with a request that reproduces it, and the test asserts once at the end with the whole list.

Determinism: `derandomize=True` (the same examples on every run, no example database), operations in the document's
order, a fresh data directory per run.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode

REQUEST_TIMEOUT_SECONDS = 30.0  # a login may be slowed by up to 2 s; nothing should come near this
# Keys of a JSON Schema that say nothing about which values are valid.
_ANNOTATIONS = {"title", "description", "default", "examples", "example", "deprecated"}


@dataclass(frozen=True)
class Caller:
    name: str
    headers: Mapping[str, str]  # sent with every case, over whatever the case generated for the same names


@dataclass(frozen=True)
class Offence:
    caller: str
    operation: str  # "POST /api/kb/articles/{article_id}/versions/{version}/restore"
    status: int | str  # the HTTP status, or "no answer: <exception>"
    body: str  # the answer's start
    request: str  # a request that reproduces it
    reason: str = "server error"  # the judge's word


# Returns why an answer is wrong (None: acceptable).
Judge = Callable[[APIOperation, int, requests.Response], str | None]


def operations_of(schema: BaseSchema) -> list[APIOperation]:
    """Every operation of the document, in its order; a part schemathesis cannot read fails the test."""
    found: list[APIOperation] = []
    for result in schema.get_all_operations():
        found.append(result.ok())  # raises with schemathesis' explanation for an unreadable operation
    return found


def _any_string(schema: Any) -> bool:
    """A schema every string (or null) satisfies: nothing about a header or path segment can be made invalid."""
    if not isinstance(schema, dict):
        return False
    rest = {k: v for k, v in schema.items() if k not in _ANNOTATIONS}
    if rest == {"type": "string"} or rest == {"type": "null"}:
        return True
    return set(rest) == {"anyOf"} and all(_any_string(option) for option in rest["anyOf"])


def can_be_invalid(operation: APIOperation, fixed: Iterable[str] = ()) -> bool:
    """Whether schemathesis can make an invalid request for the operation (else negative generation is
    Unsatisfiable, after a second of trying): a body, a required query or header to leave out, or a parameter whose
    schema is not "any string". Path parameters in `fixed` are given, not generated."""
    if len(operation.body):
        return True
    skip = set(fixed)
    for parameter in operation.iter_parameters():
        if parameter.name in skip:
            continue
        if parameter.is_required and parameter.location.value != "path":
            return True
        if not _any_string(parameter.optimized_schema):
            return True
    return False


def reproduction(case: Case, base_url: str, caller: Caller) -> str:
    """The request as a one-line recipe (the admin token by name, never by value)."""
    sent = case.as_transport_kwargs(base_url=base_url, headers=dict(caller.headers))
    url = sent["url"]
    if sent.get("params"):
        url += "?" + urlencode(sent["params"], doseq=True)
    shown = {}
    for name, value in sent.get("headers", {}).items():
        if name.lower() in ("user-agent", "accept-encoding", "accept", "connection", "x-schemathesis-testcaseid"):
            continue
        shown[name] = "Bearer <ADMIN_TOKEN>" if caller.headers.get(name) == value and "authorization" in name.lower() \
            else value
    parts = [sent["method"], url]
    if shown:
        parts.append(f"headers={shown!r}")
    for key in ("json", "data", "files"):
        if key in sent and sent[key] is not None:
            body = json.dumps(sent[key], ensure_ascii=False) if key == "json" else repr(sent[key])
            parts.append(f"{key}={body[:400]}{'…' if len(body) > 400 else ''}")
    return " ".join(parts)


@dataclass
class Sweep:
    base_url: str
    caller: Caller
    judge: Judge
    process: subprocess.Popen[bytes]
    log_path: Path
    session: requests.Session = field(default_factory=requests.Session)
    offences: list[Offence] = field(default_factory=list)
    outcomes: Counter[tuple[str, int]] = field(default_factory=Counter)
    sent: int = 0
    not_sent: int = 0  # cases the HTTP client itself refused to send (e.g. a header it cannot encode)
    unsatisfiable: list[str] = field(default_factory=list)
    seconds: Counter[str] = field(default_factory=Counter)  # per operation: generating and sending
    log_start: int = 0  # where this sweep's part of the gateway's log begins

    def __post_init__(self) -> None:
        self.log_start = log_size(self.log_path)

    def run(self, operation: APIOperation, max_examples: int, path_parameters: dict[str, Any] | None = None) -> None:
        started = time.perf_counter()
        modes = [GenerationMode.POSITIVE]
        if can_be_invalid(operation, fixed=path_parameters or {}):
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

            @settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck), print_blob=False)
            @given(case=strategy)
            def send_each(case: Case) -> None:
                self.send(operation, case)

            try:
                send_each()
            except Unsatisfiable:
                self.unsatisfiable.append(f"{operation.label} ({mode.value})")
        self.seconds[operation.label] += time.perf_counter() - started
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the gateway exited ({self.process.returncode}) during {operation.label}:\n{tail}")

    def summary(self) -> str:
        slowest = ", ".join(f"{label} {seconds:.1f} s" for label, seconds in self.seconds.most_common(5))
        return (f"{self.caller.name}: {self.sent} requests to {len({label for label, _ in self.outcomes})} operations "
                f"in {sum(self.seconds.values()):.0f} s ({self.not_sent} the client could not encode); slowest: "
                f"{slowest}; no invalid request possible for: {', '.join(self.unsatisfiable) or '-'}")

    def send(self, operation: APIOperation, case: Case) -> None:
        try:
            response = case.call(base_url=self.base_url, session=self.session, headers=dict(self.caller.headers),
                                 timeout=REQUEST_TIMEOUT_SECONDS, allow_redirects=False)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError):
            self.not_sent += 1  # refused by the client before anything left this process
            return
        except requests.RequestException as exc:  # a dropped connection or a hang is worse than a 500
            self.sent += 1
            self._offend(operation, case, f"no answer: {type(exc).__name__}", str(exc)[:200], "no answer")
            return
        self.sent += 1
        self.outcomes[(operation.label, response.status_code)] += 1
        reason = self.judge(operation, response.status_code, response)
        if reason is not None:
            self._offend(operation, case, response.status_code, " ".join(response.text[:200].split()), reason)

    def _offend(self, operation: APIOperation, case: Case, status: int | str, body: str, reason: str) -> None:
        self.offences.append(Offence(self.caller.name, operation.label, status, body,
                                     reproduction(case, self.base_url, self.caller), reason))


def report(offences: list[Offence], log_path: Path, since: int = 0, limit_per_kind: int = 2) -> str:
    """Offences grouped by (caller, operation, status), a few reproductions each, then what the gateway logged."""
    groups: dict[tuple[str, str, str, str], list[Offence]] = {}
    for offence in offences:
        groups.setdefault((offence.caller, offence.operation, str(offence.status), offence.reason), []).append(offence)
    lines = [f"{len(offences)} offending answers, {len(groups)} kinds:"]
    for (caller, operation, status, reason), found in groups.items():
        lines.append(f"- [{caller}] {operation} → {status}: {reason} ({len(found)}×)")
        lines += [f"    {o.body!r}\n      reproduce: {o.request}" for o in found[:limit_per_kind]]
    errors = server_errors(log_path, since)
    if errors:
        lines.append("the gateway's log (each distinct exception, the request that raised it first):")
        lines += [f"- {error}" for error in errors]
    return "\n".join(lines)


_ACCESS = re.compile(r"http\.request\s.*?method=(\S+).*?path=(.*?) status=(5\d\d)")


def log_size(log_path: Path) -> int:
    return log_path.stat().st_size if log_path.exists() else 0


def server_errors(log_path: Path, since: int = 0) -> list[str]:
    """Each distinct exception after a 5xx access line (from byte `since` on): the exception's line and the
    project's deepest frame."""
    if not log_path.exists():
        return []
    with log_path.open("rb") as log:
        log.seek(since)
        text = log.read().decode(errors="replace")
    seen: dict[str, str] = {}
    for match in _ACCESS.finditer(text):
        start = match.end()
        following = text[start:start + 60_000]
        if "Traceback (most recent call last)" not in following.split("http.request", 1)[0]:
            continue
        exception, frames = "?", []
        for line in following.split("Traceback (most recent call last):", 1)[1].splitlines()[1:]:
            if line and not line.startswith((" ", "\t")):
                exception = line  # the first exception's own line (with chained ones: the root cause)
                break
            if line.strip().startswith("File ") and "/.venv" not in line:
                frames.append(line.strip())
        key = f"{exception} at {frames[-1] if frames else '?'}"
        seen.setdefault(key, f"{key} (first: {match.group(1)} {match.group(2)})")
    return list(seen.values())
