"""Who really sent a mail: the e-mail channel's sender authentication (DESIGN.md, "Trust").

Anyone can write `From: citizen@example.cn`. A mail's sender is taken as proven only when the From domain passed one of
the checks below; everything else is stored and may be answered (the reply goes to that address anyway), but arrives
with `sender_verified=False`, so it cannot opt the citizen out, see or rate their work orders.

1. The receiving mail server's verdict, its `Authentication-Results` headers (RFC 8601), when the operator named that
   server's authserv-id (EMAIL_AUTHSERV_ID). Anyone can write such a header into their own mail, so only the topmost
   run of headers carrying our authserv-id counts (our server adds its header on top of what came from outside; the
   ones further down were there before it). The mail passes on `dmarc=pass` for the From domain, `dkim=pass` with a
   `header.d` aligned with the From domain, or `spf=pass` with an aligned `smtp.mailfrom`; an explicit
   `dmarc=fail` from our server is final.
2. Without such a header: the DKIM signatures are verified here (dkimpy, DNS lookups injectable for tests), off the
   event loop and within a time limit; a signature passes when its `d=` is aligned with the From domain. A DNS failure,
   a time-out, a malformed signature: not verified, never an exception.

Alignment is DMARC's relaxed one without a public-suffix list: equal domains, or one a subdomain of the other (the
domain with fewer labels must still have two). The From header itself must be unambiguous: exactly one, with exactly one
address, the one the parser took as the sender (a display name that decodes to "<someone@else>" proves nothing).

What is kept for agents (`metadata()`): verified, method, the domain that passed, whose verdict it was and a reason
from a fixed vocabulary — never the raw header values, which may name other people.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.header import Header
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Any, Literal

import dkim

Method = Literal["dmarc", "dkim", "spf", "none"]
CheckedBy = Literal["receiving_server", "dkim_verify", "none"]
# dkimpy's DNS function, called as dnsfunc(name, timeout=seconds): the TXT record at `name` (bytes,
# b"selector._domainkey.domain.") or None when there is none; it may raise (a time-out, no resolver).
DnsFunc = Callable[..., bytes | None]

# How many DKIM signatures are tried (each one is a DNS lookup): mailing lists and ESPs add a few, never dozens.
MAX_SIGNATURES = 4
DEFAULT_TIMEOUT_SECONDS = 10.0
# An addr-spec as mail servers write it (no quoted local parts, comments or routes): what alignment is computed on.
_ADDRESS = re.compile(r"^[^\s@<>()\[\]\\,;:\"]+@([^\s@<>()\[\]\\,;:\"]+)$")
_SURROGATE = re.compile("[\udc80-\udcff]")
_STRONGEST_FIRST: tuple[Method, ...] = ("dmarc", "dkim", "spf")

# dkimpy logs what it finds (header contents at debug level) to its own stdlib logger: keep that out of our logs.
_DKIM_LOG = logging.getLogger("channels.email.authentication.dkimpy")
_DKIM_LOG.addHandler(logging.NullHandler())
_DKIM_LOG.propagate = False


@dataclass(frozen=True)
class SenderAuthentication:
    """The verdict on one mail's sender."""

    verified: bool
    method: Method  # what passed ("none" when nothing did)
    domain: str | None  # the authenticated domain, aligned with the From domain; None when nothing passed
    checked_by: CheckedBy  # the receiving server's headers, our own DKIM check, or nothing could be checked
    reason: str  # a fixed phrase (never a header value): why it passed or not

    def metadata(self) -> dict[str, Any]:
        """What is stored with the message for agents (`metadata["email"]["authentication"]`)."""
        return {"verified": self.verified, "method": self.method, "domain": self.domain,
                "checked_by": self.checked_by, "reason": self.reason}


def _unverified(reason: str, checked_by: CheckedBy = "none") -> SenderAuthentication:
    return SenderAuthentication(False, "none", None, checked_by, reason)


# ---- domains --------------------------------------------------------------------------------------------------------


def normalize_domain(domain: str) -> str:
    """Lower case, no trailing dot, IDNA (A-labels), so "例子.cn" and "xn--fsqu00a.cn" compare equal; "" if unusable."""
    domain = domain.strip().strip(".").lower()
    if not domain or any(c.isspace() for c in domain):
        return ""
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain if domain.isascii() else ""


def aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment: the same domain, or one a subdomain of the other (never a bare top-level domain)."""
    d, f = normalize_domain(domain), normalize_domain(from_domain)
    if not d or not f:
        return False
    if d == f:
        return "." in d
    shorter = d if f.endswith("." + d) else f if d.endswith("." + f) else None
    # "com" is nobody's organisation; two labels at least (a public-suffix list would be exact, see the module doc).
    return shorter is not None and "." in shorter


def from_domain(headers: Message, sender: str) -> str | None:
    """The From domain, when the From header is unambiguous and names `sender` (the parser's reading); else None."""
    values = headers.get_all("From") or []
    if len(values) != 1 or isinstance(values[0], Header):
        return None  # RFC 5322: exactly one From; DKIM and DMARC verdicts are about one of several otherwise
    raw = str(values[0])
    addresses = [a for _name, a in getaddresses([raw]) if a]
    if len(addresses) != 1:
        return None  # several authors: which one the verdict is about is not clear
    address = addresses[0]
    if _SURROGATE.search(address):  # 8-bit (EAI) local part, undeclared: as the parser decodes it
        address = address.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    address = address.strip().lower()
    match = _ADDRESS.match(address)
    if match is None or not sender or address != sender.strip().lower():
        return None
    return normalize_domain(match.group(1)) or None


def _domain_of(value: str) -> str:
    """The domain of "local@domain", "@domain" or "domain"."""
    return normalize_domain(value.rpartition("@")[2])


# ---- Authentication-Results (RFC 8601) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultInfo:
    """One `method=result` of an Authentication-Results header, with its `ptype.property=value` pairs."""

    method: str
    result: str
    properties: dict[str, str]


@dataclass(frozen=True)
class AuthenticationResults:
    authserv_id: str
    results: tuple[ResultInfo, ...]


def _strip_comments(value: str) -> str:
    """The header without (comments), nesting and quoted strings respected; quoted strings are kept."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                out.append(ch)
            continue
        if quoted:
            out.append(ch)
            if ch == '"':
                quoted = False
            continue
        if ch == "(":
            depth += 1
            continue
        if ch == ")" and depth:
            depth -= 1
            continue
        if depth:
            continue
        if ch == '"':
            quoted = True
        out.append(ch)
    return "".join(out)


def _split_outside_quotes(value: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            current.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_authentication_results(value: str) -> AuthenticationResults | None:
    """One header's authserv-id and results (RFC 8601 §2.2); None when it cannot be read. Lenient on spacing and
    case, strict on shape: what cannot be read is not trusted."""
    text = " ".join(_strip_comments(value).split())
    if not text:
        return None
    pieces = _split_outside_quotes(text, ";")
    head = pieces[0].split()
    if not head or len(head) > 2 or (len(head) == 2 and not head[1].isdigit()):
        return None  # authserv-id [version]
    authserv_id = _unquote(head[0]).lower()
    if not authserv_id:
        return None
    results: list[ResultInfo] = []
    for piece in pieces[1:]:
        # "dkim = pass" is as valid as "dkim=pass": glue every "=" to its neighbours before splitting on spaces.
        tokens = re.sub(r"\s*=\s*", "=", piece.strip()).split()
        if not tokens or tokens == ["none"]:
            continue  # no-result: the server checked nothing
        method, sep, result = tokens[0].partition("=")
        if not sep or not method or not result:
            return None
        properties: dict[str, str] = {}
        for token in tokens[1:]:
            name, sep, prop_value = token.partition("=")
            if not sep:
                continue
            # The first value wins: a later duplicate cannot override what the server wrote first.
            properties.setdefault(name.lower(), _unquote(prop_value))
        results.append(ResultInfo(method.split("/", 1)[0].lower(), _unquote(result).lower(), properties))
    return AuthenticationResults(authserv_id, tuple(results))


def trusted_results(headers: Message, authserv_ids: Iterable[str]) -> list[AuthenticationResults]:
    """The Authentication-Results our own server wrote: from the top, past other servers' headers, the first run of
    headers with one of our authserv-ids. Ours further down came with the mail (a sender wrote them)."""
    ours = {a.strip().lower() for a in authserv_ids if a.strip()}
    if not ours:
        return []
    found: list[AuthenticationResults] = []
    for value in headers.get_all("Authentication-Results") or []:
        parsed = parse_authentication_results(str(value))
        if parsed is not None and parsed.authserv_id in ours:
            found.append(parsed)
        elif found:
            break  # the run of our headers ended: anything of ours below it is not ours
    return found


def verdict_of_results(results: Iterable[AuthenticationResults], domain: str) -> SenderAuthentication:
    """The receiving server's verdict for the From `domain`."""
    passed: dict[Method, str] = {}
    for header in results:
        for info in header.results:
            props = info.properties
            if info.method == "dmarc":
                header_from = normalize_domain(props.get("header.from", ""))
                if header_from != domain:
                    continue  # a verdict about another From (or none named): not about this mail's sender
                if info.result == "fail":
                    return _unverified("receiving server: dmarc=fail", "receiving_server")
                if info.result == "pass":
                    passed.setdefault("dmarc", domain)
            elif info.method == "dkim" and info.result == "pass":
                signer = normalize_domain(props.get("header.d", "")) or _domain_of(props.get("header.i", ""))
                if signer and aligned(signer, domain):
                    passed.setdefault("dkim", signer)
            elif info.method == "spf" and info.result == "pass":
                mailfrom = _domain_of(props.get("smtp.mailfrom", ""))
                if mailfrom and aligned(mailfrom, domain):
                    passed.setdefault("spf", mailfrom)
    for method in _STRONGEST_FIRST:
        if method in passed:
            return SenderAuthentication(True, method, passed[method], "receiving_server",
                                        f"receiving server: {method}=pass, aligned")
    return _unverified("receiving server: no aligned pass", "receiving_server")


# ---- our own DKIM check ---------------------------------------------------------------------------------------------


def verify_dkim(raw: bytes, domain: str, dnsfunc: DnsFunc | None = None,
                dns_timeout: float = 5.0) -> SenderAuthentication:
    """Verify the mail's DKIM signatures (the first MAX_SIGNATURES); passes on one whose d= is aligned with the From
    `domain`. Blocking (DNS): run it in a thread. Never raises."""
    lookup: DnsFunc = dnsfunc or dkim.get_txt  # type: ignore[attr-defined]
    try:
        checker = dkim.DKIM(raw, logger=_DKIM_LOG, timeout=dns_timeout)
        count = sum(1 for name, _ in checker.headers if name.lower() == b"dkim-signature")
    except Exception:  # dkimpy's reading of the message failed (malformed headers): nothing was proven
        return _unverified("unreadable for DKIM", "dkim_verify")
    if count == 0:
        return _unverified("no DKIM signature", "dkim_verify")
    reason = "DKIM signature did not verify"
    for index in range(min(count, MAX_SIGNATURES)):
        try:
            valid = bool(checker.verify(idx=index, dnsfunc=lookup))
        except Exception:  # a malformed signature or key, a DNS error: this signature proves nothing
            continue
        if not valid:
            continue
        fields = checker.signature_fields or {}
        signer = normalize_domain(bytes(fields.get(b"d", b"")).decode("ascii", "replace"))
        signed = {bytes(h).strip().lower() for h in (checker.include_headers or ())}
        if b"l" in fields:
            # Only the first l= bytes of the body are signed: anyone may append text ("STOP") below them.
            reason = "DKIM signature covers part of the body only"
            continue
        if b"from" not in signed:
            reason = "DKIM signature does not cover From"
            continue
        if not aligned(signer, domain):
            reason = "DKIM signing domain not aligned with From"
            continue
        return SenderAuthentication(True, "dkim", signer, "dkim_verify", "DKIM signature verified, aligned")
    return _unverified(reason, "dkim_verify")


# ---- the check ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SenderAuthenticator:
    """The sender check with its settings: our servers' authserv-ids, whether DKIM is verified here, how."""

    authserv_ids: tuple[str, ...] = ()
    verify_dkim: bool = True
    dnsfunc: DnsFunc | None = None  # None: dkimpy's own resolver (dnspython)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def from_setting(cls, authserv_id: str, verify_dkim: bool = True, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
                     dnsfunc: DnsFunc | None = None) -> SenderAuthenticator:
        """`authserv_id`: one id, or several separated by commas (every server of ours that writes the headers)."""
        ids = tuple(a.strip().lower() for a in authserv_id.split(",") if a.strip())
        return cls(ids, verify_dkim, dnsfunc, timeout_seconds)

    def _header_verdict(self, raw: bytes, sender: str) -> tuple[SenderAuthentication | None, str | None]:
        """(the verdict when it is settled without DKIM, the From domain)."""
        try:
            headers = BytesHeaderParser().parsebytes(raw)
            domain = from_domain(headers, sender)
        except Exception:  # the stdlib parser is lenient; anything it still chokes on proves nothing
            return _unverified("unreadable headers"), None
        if domain is None:
            return _unverified("no single, plain From address"), None
        trusted = trusted_results(headers, self.authserv_ids)
        if trusted:
            return verdict_of_results(trusted, domain), domain
        if not self.verify_dkim:
            return _unverified("no trusted Authentication-Results; DKIM check off"), domain
        return None, domain

    def check_now(self, raw: bytes, sender: str) -> SenderAuthentication:
        """The verdict, blocking (DNS lookups included): for threads, tests and benchmarks."""
        verdict, domain = self._header_verdict(raw, sender)
        if verdict is not None or domain is None:
            return verdict or _unverified("no single, plain From address")
        return verify_dkim(raw, domain, self.dnsfunc, self._dns_timeout())

    async def check(self, raw: bytes, sender: str) -> SenderAuthentication:
        """The verdict; the DKIM part (DNS) in a worker thread, given up after `timeout_seconds`."""
        verdict, domain = self._header_verdict(raw, sender)
        if verdict is not None or domain is None:
            return verdict or _unverified("no single, plain From address")
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(verify_dkim, raw, domain, self.dnsfunc, self._dns_timeout()), self.timeout_seconds
            )
        except TimeoutError:
            # The thread ends on its own (each DNS lookup has its own limit); the mail does not wait for it.
            return _unverified("DKIM check timed out", "dkim_verify")

    def _dns_timeout(self) -> float:
        # Every signature tried may need a lookup: share the time limit between them.
        return max(0.5, self.timeout_seconds / MAX_SIGNATURES)
