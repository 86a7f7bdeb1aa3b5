"""Sender authentication of the e-mail channel (channels/email/authentication.py) on real-shaped mail: DKIM signatures
made with a key generated in the run and verified by dkimpy (the public key served by a DNS function, no network),
and Authentication-Results headers of our receiving server and of others (tests/channels/email/authentication/)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import dkim
import pytest

from channels.email import EmailConnector, EmailSettings
from channels.email.authentication import (
    SenderAuthenticator,
    aligned,
    parse_authentication_results,
    verify_dkim,
)
from channels.email.parse import parse_mail
from tests.channels.email.dkimkeys import MX_RECEIVED, DkimKeys, trace

FIXTURES = Path(__file__).resolve().parent / "authentication"
EXPECTED: dict[str, dict[str, Any]] = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
OUR_MX = "mx.binjiang.example"
CITIZEN = "xiaoming.wang@example.cn"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def check(raw: bytes, keys: DkimKeys | None = None, authserv: str = OUR_MX, **options: Any) -> dict[str, Any]:
    """The verdict as stored for agents; the sender as the parser reads it (what the gateway uses)."""
    authenticator = SenderAuthenticator.from_setting(authserv, dnsfunc=(keys or DkimKeys()).dns, **options)
    return authenticator.check_now(raw, parse_mail(raw).sender).metadata()


def genuine(keys: DkimKeys, **sign: Any) -> bytes:
    """The citizen's mail signed by their provider (d=example.cn), as our MX stores it (its Received on top)."""
    return trace(keys.sign(load("citizen_webmail.eml"), "example.cn", **sign), MX_RECEIVED)


# ---- the fixtures ---------------------------------------------------------------------------------------------------


def test_every_fixture_is_covered() -> None:
    assert {p.name for p in FIXTURES.glob("*.eml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_verdict(name: str) -> None:
    raw = load(name)
    assert parse_mail(raw).sender == CITIZEN  # every one claims to be the citizen
    assert check(raw) == EXPECTED[name]


def test_the_receiving_servers_dmarc_pass_needs_no_dns() -> None:
    keys = DkimKeys()
    assert check(load("trusted_dmarc_pass.eml"), keys)["method"] == "dmarc"
    assert keys.lookups == []  # our server's verdict is taken as it is


def test_a_forged_header_of_another_server_is_ignored() -> None:
    # It claims dkim, spf and dmarc passed; it was written by the sender (mail.example.cn is not our server).
    verdict = check(load("forged_authentication_results.eml"))
    assert verdict["verified"] is False and verdict["checked_by"] == "dkim_verify"
    # Even an operator who trusted that id would only trust it as the topmost run of headers: here it is.
    assert check(load("forged_authentication_results.eml"), authserv="mail.example.cn")["verified"] is True


def test_only_the_topmost_run_of_our_headers_counts() -> None:
    # Our server's own header (top) found nothing; the "dmarc=pass" with our id further down came with the mail.
    assert check(load("forged_ours_below_our_server.eml"))["reason"] == "receiving server: no aligned pass"
    assert check(load("spoofed_with_our_verdict.eml"))["reason"] == "receiving server: dmarc=fail"


def test_without_a_configured_authserv_id_no_header_is_trusted() -> None:
    verdict = check(load("trusted_dmarc_pass.eml"), authserv="")
    # Its DKIM-Signature is checked instead: no key is published for it here, so nothing is proven.
    assert verdict["verified"] is False and verdict["checked_by"] == "dkim_verify"


def test_several_authserv_ids_may_be_named() -> None:
    assert check(load("trusted_spf_aligned.eml"), authserv="filter.binjiang.example, MX.Binjiang.Example")["verified"]


# ---- DKIM verified here ---------------------------------------------------------------------------------------------


def test_a_genuine_dkim_signed_mail_is_verified(dkim_keys: DkimKeys) -> None:
    raw = genuine(dkim_keys)
    expected = {"verified": True, "method": "dkim", "domain": "example.cn", "checked_by": "dkim_verify",
                "reason": "DKIM signature verified, aligned"}
    assert check(raw, dkim_keys) == expected
    assert check(raw, dkim_keys, authserv="") == expected  # no authserv-id configured: the same check
    mail = parse_mail(raw)
    assert mail.sender == CITIZEN and mail.text == "您好，滨江路12号的路灯坏了，请派人修理。\n\n王小明"


def test_the_same_mail_with_its_body_altered_is_not(dkim_keys: DkimKeys) -> None:
    raw = genuine(dkim_keys)
    body = "您好，滨江路12号的路灯坏了，请派人修理。".encode()
    altered = raw.replace(b"=E8=AF=B7=E6=B4=BE=E4=BA=BA", b"=E4=B8=8D=E7=94=A8=E4=BA=86")  # 请派人 → 不用了
    assert altered != raw and body not in altered
    assert parse_mail(altered).text.startswith("您好，滨江路12号的路灯坏了，不用了")
    assert check(altered, dkim_keys)["reason"] == "DKIM signature did not verify"
    stop = raw.replace(b"\r\n\r\n", b"\r\n\r\nSTOP\r\n\r\n", 1)  # text put above the signed body
    assert check(stop, dkim_keys)["verified"] is False


def test_a_changed_signed_header_is_not(dkim_keys: DkimKeys) -> None:
    raw = genuine(dkim_keys)
    assert check(raw.replace(b"Subject: =?UTF-8?B?6Lev54Gv5Z2P5LqG?=", b"Subject: STOP"), dkim_keys)[
        "verified"] is False
    # Another address at the same domain in From: the signature covers From.
    other = raw.replace(b"<xiaoming.wang@example.cn>", b"<li.lei@example.cn>")
    assert parse_mail(other).sender == "li.lei@example.cn"
    assert check(other, dkim_keys)["verified"] is False


def test_a_second_from_header_is_not(dkim_keys: DkimKeys) -> None:
    # The signed From stays as it was; a From added above it is the one a naive reader takes.
    raw = b"From: li.lei@example.cn\r\n" + genuine(dkim_keys)
    assert parse_mail(raw).sender == "li.lei@example.cn"
    assert check(raw, dkim_keys)["reason"] == "no single, plain From address"


def test_a_forged_from_without_a_signature_is_not() -> None:
    verdict = check(load("spoofed_from_no_signature.eml"), authserv="")
    assert verdict == {"verified": False, "method": "none", "domain": None, "checked_by": "dkim_verify",
                       "reason": "no DKIM signature"}


def test_a_signature_of_an_unaligned_domain_is_not(dkim_keys: DkimKeys) -> None:
    # A bulk sender's own valid signature on a mail "from" the citizen.
    raw = trace(dkim_keys.sign(load("citizen_webmail.eml"), "bulk-sender.example"), MX_RECEIVED)
    assert check(raw, dkim_keys)["reason"] == "DKIM signing domain not aligned with From"


def test_a_display_name_naming_someone_else_changes_nothing(dkim_keys: DkimKeys) -> None:
    # li.lei@example.cn's genuine mail (the provider signs it), with a display name that decodes to "<the citizen>".
    name = base64.b64encode(f"王小明 <{CITIZEN}>".encode()).decode()
    raw = load("citizen_webmail.eml").replace(
        b"From: =?UTF-8?B?546L5bCP5piO?= <xiaoming.wang@example.cn>",
        f"From: =?UTF-8?B?{name}?= <li.lei@example.cn>".encode(),
    )
    signed = trace(dkim_keys.sign(raw, "example.cn"), MX_RECEIVED)
    mail = parse_mail(signed)
    assert mail.sender == "li.lei@example.cn"  # whose mail it is: the address, not what the name says
    assert check(signed, dkim_keys)["verified"] is True  # li.lei's own mail, proven as li.lei's


def test_subdomains_align_top_level_domains_do_not(dkim_keys: DkimKeys) -> None:
    raw = load("citizen_webmail.eml").replace(b"<xiaoming.wang@example.cn>", b"<xiaoming.wang@mail.example.cn>")
    assert check(trace(dkim_keys.sign(raw, "example.cn"), MX_RECEIVED), dkim_keys)["domain"] == "example.cn"
    assert aligned("mail.example.cn", "example.cn") and aligned("example.cn", "MAIL.Example.CN.")
    assert not aligned("cn", "example.cn") and not aligned("example.cn", "cn") and not aligned("cn", "cn")
    assert not aligned("notexample.cn", "example.cn") and not aligned("", "example.cn")
    assert aligned("xn--fiqs8s.example", "中国.example")


def test_a_signature_over_part_of_the_body_is_not(dkim_keys: DkimKeys) -> None:
    # l= signs the first bytes of the body only: anyone can append "STOP" below them.
    raw = genuine(dkim_keys, length=True)
    assert check(raw, dkim_keys)["reason"] == "DKIM signature covers part of the body only"


def test_a_list_signature_first_and_the_authors_second(dkim_keys: DkimKeys) -> None:
    authors = dkim_keys.sign(load("citizen_webmail.eml"), "example.cn")
    both = trace(dkim_keys.sign(authors, "lists.example.org"), MX_RECEIVED)
    assert check(both, dkim_keys)["domain"] == "example.cn"


def test_a_signature_not_covering_from_is_not(dkim_keys: DkimKeys) -> None:
    raw = dkim_keys.sign_without_from(load("citizen_webmail.eml"), "example.cn")
    assert dkim.verify(raw, dnsfunc=dkim_keys.dns)  # valid as DKIM goes; it says nothing about who wrote From
    assert check(trace(raw, MX_RECEIVED), dkim_keys)["reason"] == "DKIM signature does not cover From"


def test_dns_failures_are_not_verified_and_never_raise(dkim_keys: DkimKeys) -> None:
    raw = genuine(dkim_keys)
    domain = "example.cn"

    def timeout(_name: bytes, timeout: float = 5) -> bytes | None:
        raise dkim.DnsTimeoutError("timed out")

    def broken(_name: bytes, timeout: float = 5) -> bytes | None:
        raise OSError("network is unreachable")

    def garbage(_name: bytes, timeout: float = 5) -> bytes | None:
        return b"v=DKIM1; k=rsa; p=not-base64!!"

    for dns in (timeout, broken, garbage, lambda _n, timeout=5: None):
        verdict = verify_dkim(raw, domain, dns)
        assert verdict.verified is False and verdict.checked_by == "dkim_verify"


async def test_a_slow_dns_is_given_up_after_the_time_limit(dkim_keys: DkimKeys) -> None:
    raw = genuine(dkim_keys)
    answer = threading.Event()

    def slow(name: bytes, timeout: float = 5) -> bytes | None:
        answer.wait(30)  # DNS answers only after the verdict is in: the check cannot have waited for it
        return dkim_keys.dns(name)

    authenticator = SenderAuthenticator(dnsfunc=slow, timeout_seconds=0.3)
    verdict = await authenticator.check(raw, CITIZEN)
    answer.set()  # let the worker thread finish before the next test
    assert verdict.metadata() == {"verified": False, "method": "none", "domain": None, "checked_by": "dkim_verify",
                                  "reason": "DKIM check timed out"}


async def test_the_check_runs_off_the_event_loop(dkim_keys: DkimKeys) -> None:
    raw = genuine(dkim_keys)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    def slowish(name: bytes, timeout: float = 5) -> bytes | None:
        time.sleep(0.3)
        return dkim_keys.dns(name)

    task = asyncio.create_task(ticker())
    try:
        verdict = await SenderAuthenticator(dnsfunc=slowish).check(raw, CITIZEN)
    finally:
        task.cancel()
    assert verdict.verified and ticks >= 10  # the loop kept running while DNS was waited for


def test_dkim_can_be_switched_off() -> None:
    keys = DkimKeys()
    raw = genuine(keys)
    verdict = check(raw, keys, authserv="", verify_dkim=False)
    assert verdict["verified"] is False and verdict["reason"] == "no trusted Authentication-Results; DKIM check off"
    assert keys.lookups == []


async def test_the_connector_puts_the_verdict_on_the_message(dkim_keys: DkimKeys) -> None:
    connector = EmailConnector(
        EmailSettings(imap_host="imap.example", imap_user="u", imap_password="p", smtp_host="smtp.example",
                      from_address="service@binjiang.example", authserv_id=OUR_MX),
    )
    connector.authenticator = SenderAuthenticator.from_setting(OUR_MX, dnsfunc=dkim_keys.dns)
    for raw, verified in ((genuine(dkim_keys), True), (load("spoofed_from_no_signature.eml"), False),
                          (load("trusted_dmarc_pass.eml"), True), (load("trusted_dkim_unaligned.eml"), False)):
        mail = connector.parse(raw)
        inbound = connector.to_inbound(mail, thread="new", authentication=await connector.authenticate(raw, mail))
        assert inbound.sender_verified is verified
        stored = inbound.metadata["email"]["authentication"]
        assert stored["verified"] is verified
        assert set(stored) == {"verified", "method", "domain", "checked_by", "reason"}
        # Nothing of the headers themselves: no addresses, no selectors, no signatures.
        assert "@" not in json.dumps(stored) and "header." not in json.dumps(stored)
    # A caller that did not check is not verified.
    assert connector.to_inbound(connector.parse(genuine(dkim_keys)), thread="new").sender_verified is False


def test_settings_defaults() -> None:
    settings = EmailSettings(imap_host="i", imap_user="u", imap_password="p", smtp_host="s", from_address="a@b.example")
    assert settings.authserv_id == "" and settings.verify_dkim is True
    authenticator = EmailConnector(settings).authenticator
    assert authenticator.authserv_ids == () and authenticator.verify_dkim is True


# ---- reading Authentication-Results ---------------------------------------------------------------------------------


def test_authentication_results_are_read_as_rfc_8601_writes_them() -> None:
    parsed = parse_authentication_results(
        'MX.Binjiang.Example 1; (comment; with "semicolons" (nested)) dkim = pass (good sig) header.d=Example.CN '
        'header.b="ab;cd"; spf=pass smtp.mailfrom="x@example.cn"; dmarc=PASS header.from=example.cn; foo'
    )
    assert parsed is None  # "foo" is no result: an unreadable header is not trusted
    parsed = parse_authentication_results(
        'MX.Binjiang.Example 1; (comment; with "semicolons" (nested)) dkim = pass (good sig) header.d=Example.CN '
        'header.b="ab;cd"; spf=pass smtp.mailfrom="x@example.cn"; dmarc=PASS header.from=example.cn'
    )
    assert parsed is not None and parsed.authserv_id == "mx.binjiang.example"
    assert [(r.method, r.result) for r in parsed.results] == [("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]
    assert parsed.results[0].properties == {"header.d": "Example.CN", "header.b": "ab;cd"}
    assert parsed.results[1].properties == {"smtp.mailfrom": "x@example.cn"}
    assert parse_authentication_results("mx.binjiang.example; none") == parse_authentication_results(
        "mx.binjiang.example;none")
    assert parse_authentication_results("mx.binjiang.example; none").results == ()  # type: ignore[union-attr]
    # Microsoft writes no authserv-id at all: its first "id" is a result, never one of ours.
    ms = parse_authentication_results("spf=pass (sender IP is 198.51.100.25) smtp.mailfrom=example.cn; dkim=none")
    assert ms is None or ms.authserv_id != OUR_MX
    assert parse_authentication_results("") is None and parse_authentication_results("(only a comment)") is None
