"""DKIM for the e-mail tests: a signing key made in the test run (never a file), dkimpy's own signing, and the DNS
function that publishes the public key to the verifier (`selector._domainkey.domain` TXT) with nothing leaving the
machine. A domain without a published key answers "no record", as DNS would."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from dataclasses import dataclass, field

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SELECTOR = b"s2026"
SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
                  b"content-transfer-encoding"]


@dataclass
class DkimKeys:
    """One RSA key per signing domain; `dns` answers the TXT lookups dkimpy makes and counts them."""

    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    lookups: list[bytes] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def key(self, domain: str) -> rsa.RSAPrivateKey:
        with self._lock:
            if domain not in self.keys:
                self.keys[domain] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self.keys[domain]

    def sign(self, raw: bytes, domain: str, *, headers: list[bytes] | None = None, length: bool = False) -> bytes:
        """The message with a DKIM-Signature of `domain` on top, as the sender's mail server adds it."""
        private = self.key(domain).private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                                 serialization.NoEncryption())
        present = {line.split(b":", 1)[0].strip().lower() for line in raw.split(b"\n\n", 1)[0].replace(
            b"\r\n", b"\n").split(b"\n") if b":" in line and not line[:1].isspace()}
        signed = [h for h in (headers or SIGNED_HEADERS) if h in present]
        signature = dkim.sign(raw, SELECTOR, domain.encode(), private, include_headers=signed,
                              canonicalize=(b"relaxed", b"relaxed"), length=length)
        return signature + raw

    def sign_without_from(self, raw: bytes, domain: str) -> bytes:
        """A valid signature whose h= leaves From out. dkimpy refuses to make one (RFC 6376 says From MUST be
        signed), a careless signer might not: made here with dkimpy's own header generator."""
        private = self.key(domain).private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                                 serialization.NoEncryption())
        signer = dkim.DKIM(raw, signature_algorithm=b"rsa-sha256")
        policy = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
        include = (b"subject", b"date", b"message-id")
        fields = [(b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/relaxed"), (b"d", domain.encode()),
                  (b"s", SELECTOR), (b"t", str(int(time.time())).encode()), (b"h", b" : ".join(include)),
                  (b"bh", base64.b64encode(hashlib.sha256(policy.canonicalize_body(signer.body)).digest())),
                  (b"b", b"0" * 60)]
        signer.hasher = hashlib.sha256
        header = signer.gen_header(fields, include, policy, b"DKIM-Signature", dkim.parse_pem_private_key(private))
        return b"DKIM-Signature: " + header + raw

    def dns(self, name: bytes, timeout: float = 5) -> bytes | None:
        """dkimpy's DNS function: the DKIM1 TXT record of a domain we made a key for."""
        self.lookups.append(name)
        for domain, key in list(self.keys.items()):
            if name.lower() == SELECTOR + b"._domainkey." + domain.encode() + b".":
                public = key.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
                return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
        return None


def trace(raw: bytes, *headers: str) -> bytes:
    """The message as our receiving server stores it: its trace headers (Received, Authentication-Results …)
    added on top, CRLF line endings."""
    top = "".join(f"{h}\r\n" for h in headers).encode()
    return top + raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


MX_RECEIVED = ("Received: from smtp.example.cn (smtp.example.cn [198.51.100.25])\r\n\tby mx.binjiang.example (Postfix) "
               "with ESMTPS id 4Xk2Lu7Yz1z9sVj\r\n\tfor <service@binjiang.example>; Mon, 23 Nov 2026 20:31:09 +0800")
