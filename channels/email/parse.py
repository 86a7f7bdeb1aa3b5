"""Reading real mail: MIME structure, charsets, HTML, quoted history, signatures, attachments, machine mail.

What real clients send: GB2312 declared but GBK (or GB18030) characters inside, RFC 2047 subjects in any charset,
8-bit headers with no declaration at all, HTML-only bodies, quoted-printable and base64, replies that carry the whole
history below (Outlook's "-----Original Message-----" / "-----邮件原件-----" / "发件人:" header block, Gmail's
"On … wrote:" / "…写道：", Foxmail and QQ Mail's "------------------ 原始邮件 ------------------", NetEase Mail
Master's "---- 回复的原邮件 ----"), replies written below or between the quoted lines (Thunderbird, Mutt, Apple Mail),
signatures after "-- " and "发自我的iPhone". `parse_mail` turns all of that into a `ParsedMail`: the text the citizen
newly wrote (every line of it, wherever it stands among the quotes), the full text (kept for audit), threading
headers, attachments, and — for auto-replies, bounces, lists and our own mail — the reason it must never be answered.
tests/channels/email/replies/ is the corpus of real-shaped replies, with the text each must give.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.header import Header, decode_header
from email.message import Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from html.parser import HTMLParser

# Declared charsets → the codec that actually decodes what such mail contains (supersets, vendor variants).
CHARSET_ALIASES = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030", "gb_2312-80": "gb18030",
    "euc-cn": "gb18030", "x-euc-cn": "gb18030", "chinese": "gb18030", "csgb2312": "gb18030",
    "big5": "big5hkscs", "x-big5": "big5hkscs", "ks_c_5601-1987": "cp949", "iso-8859-1": "cp1252",
    "us-ascii": "utf-8", "ascii": "utf-8", "unknown-8bit": "utf-8", "x-unknown": "utf-8", "utf8": "utf-8",
}
# A line the HTML converter puts where a client marked the start of quoted history (gmail_quote, divRplyFwdMsg …).
QUOTE_MARK = "\ue000"
_QUOTE_CLASSES = ("gmail_quote", "yahoo_quoted", "moz-cite-prefix", "protonmail_quote", "ms-outlook-quote")
_QUOTE_IDS = ("divrplyfwdmsg", "appendonsend", "mail-editor-reference-message-container", "original-content")
# MIME parts of a delivery report that are for machines, never attachments to keep.
_REPORT_PARTS = ("message/delivery-status", "message/disposition-notification", "text/rfc822-headers",
                 "message/feedback-report", "message/global-delivery-status", "message/global-headers")
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|antw|答复|回复|回覆)\s*(?:\[\d+\])?\s*[:：]\s*)+", re.IGNORECASE)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:自动回复|自動回覆|自动答复|automatic reply|auto(?:matic)?[- ]?reply|out of (?:the )?office|"
    r"autoreply|abwesenheitsnotiz|delivery status notification|undeliver(?:ed|able)|退信|系统退信)",
    re.IGNORECASE,
)
_MSGID = re.compile(r"<[^<>\s]+>")
_SURROGATE = re.compile("[\udc80-\udcff]")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes as text: the declared charset (through its superset), else UTF-8, else GB18030; never an error."""
    declared = (charset or "").strip().strip('"').lower()
    tried: list[str] = []
    for codec in (CHARSET_ALIASES.get(declared, declared), "utf-8", "gb18030"):
        if not codec or codec in tried:
            continue
        tried.append(codec)
        try:
            return data.decode(codec)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", errors="replace")


def decode_header_value(value: object) -> str:
    """An RFC 2047 header (any charset, GB2312 mislabels included), or raw 8-bit bytes, as text."""
    if value is None:
        return ""
    if isinstance(value, Header):  # the parser wraps undeclared 8-bit header bytes as "unknown-8bit"
        return " ".join("".join(decode_bytes(c, cs) if isinstance(c, bytes) else c
                                for c, cs in decode_header(value)).split())
    raw = str(value)
    if _SURROGATE.search(raw):  # undeclared 8-bit bytes, kept by the parser as surrogates
        raw = decode_bytes(raw.encode("utf-8", "surrogateescape"), None)
    pieces: list[str] = []
    try:
        decoded = decode_header(raw)
    except Exception:  # a broken encoded word: show it as it came
        return " ".join(raw.split())
    for chunk, charset in decoded:
        pieces.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    # decode_header drops the space between an encoded word and plain text only where RFC 2047 says to.
    return " ".join("".join(pieces).split())


def subject_key(subject: str) -> str:
    """A subject without reply prefixes, case or spacing: the same for a message and every reply to it."""
    return " ".join(_REPLY_PREFIX.sub("", subject).split()).casefold()


def reply_subject(subject: str, empty: str) -> str:
    """"Re: <original>", never "Re: Re:" (nor "Re: 回复:")."""
    base = " ".join(_REPLY_PREFIX.sub("", subject).split())
    return f"Re: {base or empty}"


def message_ids(value: object) -> tuple[str, ...]:
    return tuple(_MSGID.findall(decode_header_value(value)))


# ---- HTML → text ----------------------------------------------------------------------------------------------------


class _HtmlText(HTMLParser):
    """Visible text, a line per block, "> " before lines inside <blockquote>, QUOTE_MARK where a client's quote
    container begins (so the quote stripper can cut there)."""

    BLOCK = {"p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "pre",
             "blockquote", "section", "article", "header", "footer", "dd", "dt", "address"}
    SKIP = {"script", "style", "head", "title", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.line = ""
        self.quote_depth = 0
        self.skip_depth = 0
        self.pre = 0
        self.links: list[str | None] = []

    def _flush(self, blank: bool = False) -> None:
        """End the current line; `blank` also leaves an empty line (a paragraph, a second <br>)."""
        text = self.line.strip() if not self.pre else self.line.rstrip()
        if text:
            self.lines.append("> " * self.quote_depth + text)
        if blank and self.lines and self.lines[-1] != "":
            self.lines.append("")
        self.line = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip_depth += 1
            return
        values = dict(attrs)
        classes = (values.get("class") or "").lower()
        ident = (values.get("id") or "").lower()
        if any(c in classes for c in _QUOTE_CLASSES) or ident in _QUOTE_IDS:
            self._flush()
            self.lines.append(QUOTE_MARK)
        if tag == "br":
            self._flush(blank=not self.line.strip())  # a second <br> in a row is an empty line
        elif tag in self.BLOCK:
            self._flush(blank=tag == "p")
        if tag == "blockquote":
            self.quote_depth += 1
        elif tag == "li":
            self.line += "- "
        elif tag == "pre":
            self.pre += 1
        elif tag == "a":
            self.links.append(values.get("href"))
        elif tag in ("td", "th") and self.line.strip():
            self.line += " "
        elif tag == "img" and values.get("alt"):
            self.line += f"[{values['alt']}]"

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if tag == "a" and self.links:
            href = self.links.pop()
            if href and href.startswith(("http://", "https://")) and href not in self.line:
                self.line += f" ({href})"
        if tag in self.BLOCK:
            self._flush(blank=tag in ("p", "blockquote", "ul", "ol", "table"))
        if tag == "blockquote":
            self.quote_depth = max(0, self.quote_depth - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.pre:
            for i, piece in enumerate(data.split("\n")):
                if i:
                    self._flush()
                self.line += piece
            return
        self.line += re.sub(r"[ \t\r\n\f]+", " ", data) if self.line else re.sub(r"[ \t\r\n\f]+", " ", data).lstrip()

    def text(self) -> str:
        self._flush()
        return "\n".join(self.lines).strip("\n")


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient; anything it still chokes on keeps what was read so far
        pass
    return parser.text()


# ---- quoted history and signatures ---------------------------------------------------------------------------------
#
# A reply is read line by line. Lines quoted with ">" (or inside an HTML <blockquote>) are the history and are
# dropped wherever they are, so what the citizen wrote above, between (an interleaved answer) and below them (a
# bottom post) is kept, in order. The attribution that introduces a quote ("On … wrote:", "…写道：") goes with it.
# History that is not quoted line by line (Outlook's header block, QQ Mail's "原始邮件" separator, a client's quote
# container in HTML that holds no blockquote) can only be told by where it starts: everything from there on is cut.
# A signature ends the stretch of the citizen's text it is in: up to the next quote, or the end.

_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*(?:original message|original|replied message|原始邮件|原始郵件|原邮件|邮件原件|郵件原件|邮件原文|"
    r"回复的原邮件|回覆的原郵件|forwarded by .{0,200}?)\s*-{2,}\s*$",
    re.IGNORECASE,
)
# A header line of quoted history: "From:", "*发件人:*" (bold in HTML), "| 发件人 |" (NetEase Mail Master's table).
_HEADER_FROM = re.compile(r"^\s*[*|]?\s*(?:from|发件人|寄件者|寄件人|發件人)\s*\*?\s*(?:[:：]|\|)", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*[*|]?\s*(?:sent|date|to|cc|subject|发送时间|日期|时间|收件人|抄送|抄送至|主题|寄件日期|傳送時間|收件者|副本|主旨)"
    r"\s*\*?\s*(?:[:：]|\|)",
    re.IGNORECASE,
)
_WROTE = re.compile(
    r"^\s*(?:on\b.{3,300}\bwrote\s*:|[^<>]{1,100}<[^<>\s@]{1,64}@[^<>\s]{1,255}>\s*wrote\s*:|"
    r".{3,300}(?:写道|寫道)\s*[:：])\s*$",
    re.IGNORECASE,
)
# How an attribution that a client wrapped over several lines begins: "On …", "在 2026…", or a name and an address.
_WROTE_START = re.compile(r"^\s*(?:on\s|at\s|在\s?\d)|^[^。！？!?]{0,80}<[^<>\s]*@", re.IGNORECASE)
_ADDRESS = re.compile(r"<[^<>\s@]{1,64}@[^<>\s]{1,255}>")
_UNDERSCORES = re.compile(r"^\s*_{8,}\s*$")
_MOBILE_SIGNATURE = re.compile(
    r"^\s*(?:发自我的|來自我的|来自我的|发自网易邮箱|发自 ?(?:QQ|Outlook|iPhone|华为|小米)|"
    r"sent from my|sent from outlook|get outlook for|sent from mail for windows|从我的.{1,20}发送)",
    re.IGNORECASE,
)


def _quoted(line: str) -> bool:
    return line.startswith(">")


def _next_texts(lines: list[str]) -> list[int | None]:
    """For each index, the first line at or after it that is neither blank nor a quote mark (None: there is none);
    one pass from the end, so looking ahead stays linear however many blank lines or marks a mail has."""
    found: list[int | None] = [None] * (len(lines) + 1)
    for j in range(len(lines) - 1, -1, -1):
        found[j] = j if lines[j].strip() and lines[j] != QUOTE_MARK else found[j + 1]
    return found


def _join(lines: list[str]) -> str:
    """Lines a client wrapped, joined back ("Name <" + "a@b.cn> wrote:" with no space inside the address)."""
    joined = ""
    for line in lines:
        joined += line.strip() if not joined or joined.endswith("<") else " " + line.strip()
    return joined


def _attribution(lines: list[str], i: int) -> int:
    """How many lines from `i` (1 to 3, 0 for none) make an unquoted "On … wrote:" or "…写道：" line."""
    for k in (1, 2, 3):
        chunk = lines[i : i + k]
        if len(chunk) < k or any(not n.strip() or _quoted(n) or n == QUOTE_MARK for n in chunk):
            return 0
        if (k == 1 or _WROTE_START.match(chunk[0])) and _WROTE.match(_join(chunk)):
            return k
    return 0


def _header_block(lines: list[str], i: int) -> bool:
    """An unquoted "From:" line with at least two more header lines just below it (Outlook, QQ Mail, Android)."""
    return bool(_HEADER_FROM.match(lines[i])) and sum(bool(_HEADER_NEXT.match(n)) for n in lines[i + 1 : i + 7]) >= 2


def _history(lines: list[str]) -> tuple[int, set[int]]:
    """Where unquoted history begins (len(lines) when there is none), and the attribution lines of quotes."""
    attributions: set[int] = set()
    next_text = _next_texts(lines)
    i = 0
    while i < len(lines):
        line = lines[i]
        if _quoted(line):
            i += 1
            continue
        if line == QUOTE_MARK:
            # A client's quote container: fine when a quote (with its attribution) follows; history otherwise.
            j = next_text[i + 1]
            if j is not None and not _quoted(lines[j]):
                k = _attribution(lines, j)
                after = next_text[j + k] if k else None
                if after is None or not _quoted(lines[after]):
                    return i, attributions
            i += 1
            continue
        if _SEPARATOR.match(line):
            return i, attributions
        if _header_block(lines, i):
            return (i - 1 if i and _UNDERSCORES.match(lines[i - 1]) else i), attributions
        k = _attribution(lines, i)
        if k:
            after = next_text[i + k]
            if after is None:
                return i, attributions  # an attribution with nothing below it
            if _quoted(lines[after]):
                attributions.update(range(i, i + k))
                i += k
                continue
            if _ADDRESS.search(_join(lines[i : i + k])):
                return i, attributions  # "Name <a@b.cn> … wrote:" over history that is not quoted
        i += 1
    return len(lines), attributions


def _without_signature(run: list[str]) -> list[str]:
    """A stretch of the writer's lines without its signature ("-- " and below, or a short "发自我的iPhone" tail)."""
    below = [0] * (len(run) + 1)  # how many non-blank lines follow each line
    for i in range(len(run) - 1, -1, -1):
        below[i] = below[i + 1] + (1 if i + 1 < len(run) and run[i + 1].strip() else 0)
    for i, line in enumerate(run):
        if line.rstrip() == "--" or (below[i] <= 2 and _MOBILE_SIGNATURE.match(line)):
            return run[:i]
    return run


def strip_quoted(text: str) -> str:
    """What the writer newly wrote: every line of theirs above, between and below quotes, in order; quoted lines,
    their attributions, unquoted history and signatures left out."""
    lines = [line.replace("\xa0", " ").replace("\u3000", " ").rstrip("\r") for line in text.split("\n")]
    end, attributions = _history(lines)
    kept: list[str] = []
    run: list[str] = []  # the writer's lines since the last quote
    for i, line in enumerate(lines[:end]):
        if _quoted(line) or i in attributions:
            kept.extend(_without_signature(run))
            run = []
        elif line != QUOTE_MARK:
            run.append(line.rstrip())
    kept.extend(_without_signature(run))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


# ---- the message ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailAttachment:
    mime: str
    data: bytes
    filename: str | None = None
    inline: bool = False


@dataclass(frozen=True)
class DeliveryReport:
    """What a bounce (RFC 3464 multipart/report) says about a message we sent."""

    action: str  # failed, delayed, delivered, relayed, expanded
    message_ids: tuple[str, ...]  # the Message-ID(s) of the reported message (ours)
    diagnostic: str = ""


@dataclass(frozen=True)
class ParsedMail:
    message_id: str  # the Message-ID, or a stable stand-in (a hash of the bytes) when the mail has none
    sender: str  # the From address, lower-case ("" when there is none)
    sender_name: str | None
    recipients: tuple[str, ...]
    subject: str
    date: datetime | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str  # what is new: quoted history and signature stripped
    full_text: str  # the whole body as decoded text (kept for audit)
    html_only: bool
    attachments: tuple[MailAttachment, ...] = ()
    machine: str | None = None  # why this mail is from a machine and must never be answered
    headers: dict[str, str] = field(default_factory=dict)
    report: DeliveryReport | None = None  # set on a delivery status notification

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Message-IDs this mail answers, nearest first (In-Reply-To, then References newest to oldest)."""
        seen: dict[str, None] = {}
        for mid in (*self.in_reply_to, *reversed(self.references)):
            seen.setdefault(mid, None)
        return tuple(seen)


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else str(part.get_payload()).encode("utf-8", "surrogateescape")
    charset = part.get_content_charset()
    if charset is None and part.get_content_type() == "text/html":
        meta = re.search(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_-]+)", data[:4096], re.IGNORECASE)
        charset = meta.group(1).decode("ascii") if meta else None
    return decode_bytes(data, charset).replace("\r\n", "\n").replace("\r", "\n")


def _is_attachment(part: Message) -> bool:
    return part.get_content_disposition() == "attachment" or (
        part.get_filename() is not None and part.get_content_type() not in ("text/plain", "text/html")
    )


def _walk(part: Message, texts: list[tuple[str, str]], attachments: list[MailAttachment]) -> None:
    ctype = part.get_content_type()
    if part.is_multipart():
        children = [c for c in part.get_payload() if isinstance(c, Message)]  # type: ignore[union-attr]
        if ctype == "multipart/alternative" and children:
            plain = [c for c in children if c.get_content_type() == "text/plain" and _part_text(c).strip()]
            richer = [c for c in children if c.get_content_type() != "text/plain"]
            _walk(plain[0] if plain else (richer[-1] if richer else children[0]), texts, attachments)
            return
        if ctype == "multipart/report" and children:
            _walk(children[0], texts, attachments)  # the human-readable part; the rest is for machines
            return
        for child in children:
            _walk(child, texts, attachments)
        return
    if ctype in _REPORT_PARTS:
        return
    if ctype in ("text/plain", "text/html") and not _is_attachment(part):
        texts.append((ctype, _part_text(part)))
        return
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes) and payload:
        filename = decode_header_value(part.get_filename()) or None
        attachments.append(MailAttachment(ctype, payload, filename, part.get_content_disposition() == "inline"))


def delivery_report(message: Message) -> DeliveryReport | None:
    """The action, diagnostic and reported Message-IDs of an RFC 3464 delivery status notification."""
    if message.get_content_type() != "multipart/report" or not message.is_multipart():
        return None
    action, diagnostic = "", ""
    ids: tuple[str, ...] = ()
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            blocks = part.get_payload()
            for block in blocks if isinstance(blocks, list) else []:
                if isinstance(block, Message) and block.get("Action"):
                    action = action or str(block.get("Action")).strip().lower()
                    diagnostic = diagnostic or " ".join(
                        decode_header_value(block.get("Diagnostic-Code") or block.get("Status")).split()
                    )
        elif ctype in ("text/rfc822-headers", "message/rfc822", "message/global-headers") and not ids:
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                ids = message_ids(inner[0].get("Message-ID"))
            else:
                data = part.get_payload(decode=True)
                headers = message_from_bytes(data if isinstance(data, bytes) else str(inner).encode())
                ids = message_ids(headers.get("Message-ID"))
    if not action:
        return None
    return DeliveryReport(action, ids, diagnostic[:300])


def machine_reason(message: Message, sender: str, subject: str, own_addresses: tuple[str, ...]) -> str | None:
    """Why this mail came from a machine (an auto-reply, a bounce, a list, ourselves), or None for a person."""
    header = lambda name: decode_header_value(message.get(name)).strip().lower()  # noqa: E731
    if sender and sender in own_addresses:
        return "own address"
    if message.get_content_type() == "multipart/report":
        return "delivery report"
    local = sender.split("@", 1)[0]
    if local in ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon") or not sender:
        return "mailer daemon"
    if message.get("Return-Path") is not None and header("Return-Path") in ("<>", ""):
        return "bounce (null return path)"
    auto = header("Auto-Submitted")
    if auto and auto != "no":
        return f"auto-submitted: {auto}"
    if header("Precedence") in ("bulk", "junk", "list", "auto_reply"):
        return f"precedence: {header('Precedence')}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponse", "X-Auto-Reply"):
        if message.get(name) is not None and header(name) not in ("no", "false", "0"):
            return f"{name.lower()} header"
    if message.get("List-Id") is not None or message.get("List-Unsubscribe") is not None:
        return "mailing list"
    if any(own and own in header("X-Loop") for own in own_addresses):
        return "our own loop header"
    if _AUTO_SUBJECT.match(subject):
        return "auto-reply subject"
    return None


def _from(message: Message) -> tuple[str, str]:
    """(display name, address) of the From header. The address is read from the header as it came, before RFC 2047
    decoding: a display name that decodes to "王 <someone@else>" must not change whose mail this is."""
    value = message.get("From")
    if value is None:
        return "", ""
    if not isinstance(value, Header):
        found = [(n, a) for n, a in getaddresses([str(value)]) if a]
        if found:
            name, address = found[0]
            if _SURROGATE.search(address):  # undeclared 8-bit (an internationalised address): UTF-8 or GBK
                address = decode_bytes(address.encode("utf-8", "surrogateescape"), None)
            return decode_header_value(name), address
    # Not readable as it came (broken syntax): the lenient reading, so the mail is still taken; the sender check
    # (channels/email/authentication.py) finds no plain From address in it and leaves the sender unverified.
    return parseaddr(decode_header_value(value))


def parse_mail(raw: bytes, own_addresses: tuple[str, ...] = ()) -> ParsedMail:
    """Decode one RFC 5322 message (bytes as fetched) into what the gateway needs."""
    message = message_from_bytes(raw)
    name, address = _from(message)
    sender = address.strip().lower()
    subject = decode_header_value(message.get("Subject"))
    texts: list[tuple[str, str]] = []
    attachments: list[MailAttachment] = []
    _walk(message, texts, attachments)
    html_only = bool(texts) and all(ctype == "text/html" for ctype, _ in texts)
    full = "\n".join(html_to_text(body) if ctype == "text/html" else body for ctype, body in texts).strip()
    message_id = next(iter(message_ids(message.get("Message-ID"))), None)
    if message_id is None:
        message_id = f"<sha256.{hashlib.sha256(raw).hexdigest()[:40]}@no-message-id>"
    try:
        date = parsedate_to_datetime(str(message.get("Date"))) if message.get("Date") else None
    except (TypeError, ValueError):
        date = None
    own = tuple(a.lower() for a in own_addresses if a)
    recipients = tuple(a.lower() for _, a in getaddresses(
        [decode_header_value(v) for v in (message.get_all("To") or []) + (message.get_all("Cc") or [])]
    ) if a)
    keep = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References", "Auto-Submitted",
            "Precedence", "List-Id", "Content-Type", "X-Mailer", "User-Agent")
    return ParsedMail(
        message_id=message_id,
        sender=sender,
        sender_name=name.strip() or None,
        recipients=recipients,
        subject=subject,
        date=date,
        in_reply_to=message_ids(message.get("In-Reply-To")),
        references=message_ids(message.get("References")),
        text=strip_quoted(full),
        full_text=full.replace(QUOTE_MARK + "\n", "").replace(QUOTE_MARK, ""),
        html_only=html_only,
        attachments=tuple(attachments),
        machine=machine_reason(message, sender, subject, own),
        headers={k: decode_header_value(message.get(k)) for k in keep if message.get(k) is not None},
        report=delivery_report(message),
    )
