"""Property-based tests (hypothesis) of what reads a stranger's mail: the e-mail parser (channels/email/parse.py) and
the sender check (channels/email/authentication.py). Whatever bytes arrive — random, or a mail built from pieces that
break parsers (odd charsets, broken encoded words, MIME skeletons, many From headers, forged Authentication-Results,
DKIM-Signature headers) — the parser returns a ParsedMail and the check returns a verdict: neither raises. And the check
never calls a sender proven unless our own server's header said so (the DNS here knows no key at all)."""

from __future__ import annotations

from email.utils import parseaddr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.email.authentication import (
    AuthenticationResults,
    SenderAuthenticator,
    aligned,
    parse_authentication_results,
)
from channels.email.parse import ParsedMail, parse_mail

OURS = "service@binjiang.example"
OUR_MX = "mx.binjiang.example"
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _no_key(_name: bytes, timeout: float = 5) -> bytes | None:
    return None  # no key published anywhere: no DKIM signature can verify


AUTHENTICATOR = SenderAuthenticator.from_setting(OUR_MX, dnsfunc=_no_key, timeout_seconds=2.0)

# Pieces real mail (and attacks on mail readers) are made of.
HEADER_NAMES = ["From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References", "Content-Type",
                "Content-Transfer-Encoding", "Content-Disposition", "MIME-Version", "Auto-Submitted", "Precedence",
                "Return-Path", "List-Id", "X-Autoreply", "Authentication-Results", "DKIM-Signature", "Received"]
FRAGMENTS = [
    "王小明 <xiaoming.wang@example.cn>", "=?UTF-8?B?546L5bCP5piO?= <xiaoming.wang@example.cn>",
    "=?utf-8?q?victim@example.cn_<victim@example.cn>?= <attacker@evil.example>", "a@b.example, c@d.example",
    "\"Wang, X\" <x@example.cn>", "<>", "undisclosed-recipients:;", "x@example.cn (comment <v@example.cn>)",
    "=?gb2312?B?1cWraA==?=", "=?x-unknown?Q?=FF=FE?=", "=?utf-8?b?broken", "=?", "multipart/mixed; boundary=b",
    "multipart/alternative; boundary=b", "multipart/report; report-type=delivery-status; boundary=b",
    "text/html; charset=gb2312", "text/plain; charset=\"no-such-charset\"", "message/rfc822", "base64",
    "quoted-printable", "8bit", "attachment; filename*=utf-8''%E5%A1%8C.jpg", "inline; filename=\"=?utf-8?b?5aGM?=\"",
    "Mon, 23 Nov 2026 09:12:00 +0800", "Mon, 99 Foo 20000 99:99:99 +9999", "<a@b> <c@d>", "auto-replied", "bulk",
    f"{OUR_MX}; dmarc=pass header.from=example.cn", f"{OUR_MX}; dkim=pass header.d=example.cn",
    f"{OUR_MX}; spf=pass smtp.mailfrom=x@example.cn", f"{OUR_MX} 1; (c; (nested)) dkim = pass header.d=\"example.cn\"",
    "other.example; dmarc=pass header.from=example.cn", f"{OUR_MX}; none", f"{OUR_MX}; dmarc=fail header.from=x.cn",
    "v=1; a=rsa-sha256; d=example.cn; s=s1; h=from:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA",
    "v=1; a=rsa-sha256; d=example.cn; s=s1; l=3; h=from; bh=x; b=", "v=1; d=; s=", "",
]
BODIES = [
    "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n你好\r\n--b\r\nContent-Type: image/jpeg\r\n"
    "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=a.jpg\r\n\r\n/9j/4A==\r\n--b--\r\n",
    "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nAction: failed\r\n"
    "Status: 5.1.1\r\n\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <x@y>\r\n--b--\r\n",
    "--b\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\n--c--\r\n--b",
    "<html><body><div class=gmail_quote><blockquote>引用</blockquote></div><p>新</p><script>x</script>",
    "STOP", "> quoted\r\n> more\r\n", "=E4=BD=A0=\r\n=A5=BD", "5L2g5aW9\r\n", "-- \r\nsignature\r\n",
]

text_value = st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=60),
                       st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=3).map(" ".join))
header = st.tuples(st.one_of(st.sampled_from(HEADER_NAMES), st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}",
                                                                          fullmatch=True)), text_value)
body = st.one_of(st.sampled_from(BODIES), st.text(max_size=300))
encoding = st.sampled_from(["utf-8", "gb18030", "latin-1"])


def _encode(text: str, codec: str) -> bytes:
    return text.encode(codec, "replace")


@st.composite
def mails(draw: st.DrawFn) -> bytes:
    """A message built from header and body pieces, in one of the encodings real clients use (8-bit raw headers too),
    with CRLF or bare LF line ends."""
    codec = draw(encoding)
    headers = draw(st.lists(header, max_size=12))
    newline = draw(st.sampled_from(["\r\n", "\n"]))
    # Folded values and stray line breaks inside values are what broken senders write.
    lines = [f"{name}: {value}" for name, value in headers]
    text = newline.join(lines) + newline + newline + draw(body).replace("\r\n", newline)
    return _encode(text, codec)


def _assert_clean(mail: ParsedMail) -> None:
    assert isinstance(mail, ParsedMail)
    assert mail.message_id.startswith("<") and mail.message_id.endswith(">")
    assert mail.sender == mail.sender.lower()
    assert isinstance(mail.text, str) and isinstance(mail.full_text, str) and isinstance(mail.subject, str)
    assert all(isinstance(a.data, bytes) for a in mail.attachments)


def _assert_verdict(raw: bytes, sender: str) -> None:
    verdict = AUTHENTICATOR.check_now(raw, sender)
    stored = verdict.metadata()
    assert set(stored) == {"verified", "method", "domain", "checked_by", "reason"}
    if verdict.verified:
        # Only our server's header can have said so (no DKIM key exists here), for a From domain it was about.
        assert verdict.checked_by == "receiving_server" and verdict.method in ("dmarc", "dkim", "spf")
        assert b"authentication-results" in raw.lower() and OUR_MX.encode() in raw.lower()
        domain = parseaddr(sender)[1].rpartition("@")[2]
        assert verdict.domain and aligned(verdict.domain, domain)
    else:
        assert verdict.method == "none" and verdict.domain is None


@FUZZ
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(raw: bytes) -> None:
    mail = parse_mail(raw, (OURS,))
    _assert_clean(mail)
    verdict = AUTHENTICATOR.check_now(raw, mail.sender)
    assert verdict.verified is False  # random bytes are nobody's proven mail


@FUZZ
@given(mails())
def test_mail_built_from_pieces(raw: bytes) -> None:
    mail = parse_mail(raw, (OURS,))
    _assert_clean(mail)
    _assert_verdict(raw, mail.sender)


@FUZZ
@given(st.binary(max_size=400), mails())
def test_garbage_around_a_mail(prefix: bytes, raw: bytes) -> None:
    for candidate in (prefix + raw, raw + prefix, raw.replace(b"\n", prefix[:3] + b"\n", 2)):
        mail = parse_mail(candidate, (OURS,))
        _assert_clean(mail)
        _assert_verdict(candidate, mail.sender)


@FUZZ
@given(st.one_of(st.text(max_size=300), st.lists(st.sampled_from(FRAGMENTS + [";", "(", ")", "\"", "\\", "="]),
                                                 max_size=20).map("".join)))
def test_authentication_results_headers(value: str) -> None:
    parsed = parse_authentication_results(value)
    assert parsed is None or (isinstance(parsed, AuthenticationResults) and parsed.authserv_id == parsed.authserv_id
                              .lower() and all(r.method == r.method.lower() for r in parsed.results))
