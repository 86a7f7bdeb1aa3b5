"""Phone-line turn latency: the TwiML answer to a spoken turn beside the REST channel's turn, same Rasa, same run.

Each spoken turn is a signed Twilio `<Gather>` callback (the SDK's RequestValidator over the address our own TwiML
gave), answered with the bot's reply as `<Say>` and the next `<Gather>`. The REST turn with the same words, one
citizen at a time, is the baseline; Twilio waits about 15 s for the answer, and our aim is a p99 under 1.5 s.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from bench.processes import bot_stack
from bench.stats import summary_ms, table
from gateway.settings import PROJECT_ROOT

PUBLIC_BASE = "https://voice-bench.invalid"
ACCOUNT_SID = "AC" + "0" * 30 + "42"
AUTH_TOKEN = "voice-bench-auth-token"
MESSAGES = ["你好", "居住证怎么办理", "公积金怎么提取", "hello", "how do I pay my water bill", "谢谢", "thanks", "再见"]
CALLS = 15  # calls, each saying every message once


def _form(call_sid: str, caller: str, words: str) -> dict[str, str]:
    return {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": call_sid, "CallStatus": "in-progress",
            "Direction": "inbound", "From": caller, "Caller": caller, "To": "+15005550006",
            "Called": "+15005550006", "SpeechResult": words, "Confidence": "0.9"}


def _call(client: httpx.Client, base: str, validator: RequestValidator, index: int) -> list[float]:
    """One call through every message; the time of each spoken turn's TwiML answer."""
    call_sid, caller = f"CA{uuid.uuid4().hex}", f"+86139{index:08d}"
    path = "/channels/voice/webhook?" + urlencode({"turn": 1, "lang": "zh"})
    took = []
    for words in MESSAGES:
        form = _form(call_sid, caller, words)
        headers = {"X-Twilio-Signature": validator.compute_signature(PUBLIC_BASE + path, form)}
        started = time.perf_counter()
        response = client.post(base + path, data=form, headers=headers)
        took.append(time.perf_counter() - started)
        response.raise_for_status()
        gather = ET.fromstring(response.text).find("Gather")
        assert gather is not None, response.text
        path = gather.attrib["action"].removeprefix(PUBLIC_BASE)
    return took


def _rest(client: httpx.Client, base: str) -> list[float]:
    sender = f"bench-{uuid.uuid4().hex[:8]}"
    took = []
    for words in MESSAGES:
        started = time.perf_counter()
        client.post(f"{base}/channels/rest/webhook", json={"sender": sender, "message": words}).raise_for_status()
        took.append(time.perf_counter() - started)
    return took


def main() -> None:
    kb = PROJECT_ROOT.parent / "shared" / "kb" / "articles.jsonl"
    settings = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PUBLIC_BASE_URL": PUBLIC_BASE,
                "TWILIO_API_BASE_URL": "http://127.0.0.1:9"}  # nothing is texted in these calls
    if kb.exists():
        settings["KB_PATH"] = str(kb)
    validator = RequestValidator(AUTH_TOKEN)
    with bot_stack("voice", settings) as stack, httpx.Client(timeout=30) as client:
        _call(client, stack.base, validator, 0)  # warm both paths
        _rest(client, stack.base)
        voice: list[float] = []
        rest: list[float] = []
        for index in range(1, CALLS + 1):  # interleaved, so both see the same machine
            voice += _call(client, stack.base, validator, index)
            rest += _rest(client, stack.base)
    baseline, spoken = summary_ms(rest), summary_ms(voice)
    print(table(
        ["path", "turns", "p50 ms", "p99 ms", "p50 ×rest", "p99 ×rest"],
        [["rest turn", len(rest), f"{baseline['p50']:.1f}", f"{baseline['p99']:.1f}", "1.00", "1.00"],
         ["voice turn (TwiML)", len(voice), f"{spoken['p50']:.1f}", f"{spoken['p99']:.1f}",
          f"{spoken['p50'] / baseline['p50']:.2f}", f"{spoken['p99'] / baseline['p99']:.2f}"]],
    ))
    print(f"voice p99 under 1.5 s (Twilio waits ~15 s): {'yes' if spoken['p99'] < 1500 else 'NO'}")
