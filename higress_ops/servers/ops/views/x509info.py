"""What a certificate says about itself, read with `cryptography` (never trusting Envoy's summary)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509


@dataclass(frozen=True)
class CertInfo:
    subject: str
    issuer: str
    serial_hex: str
    not_before: dt.datetime
    not_after: dt.datetime
    is_ca: bool
    sans: tuple[str, ...]

    def valid_at(self, now: dt.datetime) -> bool:
        return self.not_before < now < self.not_after

    def days_left(self, now: dt.datetime) -> int:
        return (self.not_after - now) // dt.timedelta(days=1)


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def data_source_text(source: Any) -> str:
    """PEM text of an envoy DataSource from a config dump (inline_bytes is base64 in JSON)."""
    if not isinstance(source, Mapping):
        return ""
    if isinstance(source.get("inline_bytes"), str):
        try:
            return base64.b64decode(source["inline_bytes"], validate=False).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return ""
    text = source.get("inline_string")
    if isinstance(text, str):
        return text
    return ""


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    out: list[str] = []
    for name in ext:
        value = name.value
        out.append(str(value) if not isinstance(value, bytes) else value.hex())
    return tuple(out)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def parse_first(pem: str) -> CertInfo:
    """The first certificate of a PEM bundle (what istioctl reports); ValueError when there is none."""
    certs = x509.load_pem_x509_certificates(pem.encode())
    return info(certs[0])


def parse_all(pem: str) -> list[CertInfo]:
    return [info(c) for c in x509.load_pem_x509_certificates(pem.encode())]


def info(cert: x509.Certificate) -> CertInfo:
    return CertInfo(
        subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
        serial_hex=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
        is_ca=_is_ca(cert), sans=_sans(cert),
    )
