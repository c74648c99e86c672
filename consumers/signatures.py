"""SNS message signatures: the signed string, the signing-certificate URL policy, and verification."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from schemas.errors import InvalidRecordError

# The fields SNS signs in a Notification, in this order, each as "Name\nvalue\n"; Subject only when the
# publisher set one (AWS "Verifying the signature of an Amazon SNS message").
SIGNED_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
OPTIONAL_FIELDS = frozenset({"Subject"})
# Only SHA256withRSA: SignatureVersion 1 is SHA1, which no longer resists forgery.
SIGNATURE_VERSION = "2"
# SNS serves its signing certificates from its regional endpoint only (".cn" in the China partition).
SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?")
CERTIFICATE_PATH = re.compile(r"/[A-Za-z0-9_-][A-Za-z0-9._-]*\.pem")
# What a URL may contain at all: printable ASCII without spaces, so no parser can read it two ways.
URL_CHARACTERS = re.compile(r"[!-~]+")

# Metric labels of the rejections (InvalidRecordError.reason): few, so an operator can alarm on each.
BAD_SIGNATURE = "bad-signature"
UNTRUSTED_CERTIFICATE_URL = "untrusted-certificate-url"

CertificateFetch = Callable[[str], bytes]


@dataclass(frozen=True)
class SignedEnvelope:
    """What a Notification envelope claims: its signed bytes, its signature and where its key is."""

    string_to_sign: bytes
    signature: bytes
    certificate_url: str


def string_to_sign(envelope: Mapping[str, object]) -> bytes:
    """The bytes SNS signed for a Notification envelope; a missing or non-string field is rejected."""
    kind = envelope.get("Type")
    if kind != "Notification":
        raise InvalidRecordError(f"Type {kind!r} is not a signed Notification envelope", BAD_SIGNATURE)
    lines: list[str] = []
    for name in SIGNED_FIELDS:
        value = envelope.get(name)
        if value is None and name in OPTIONAL_FIELDS:
            continue
        if not isinstance(value, str):
            raise InvalidRecordError(
                f"SNS envelope field {name} must be a string, got {value!r}", BAD_SIGNATURE
            )
        lines += [name, value]
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def certificate_url(url: object, topic_arn: object) -> str:
    """The signing-certificate URL if SNS in the topic's own region serves it, else a clear rejection."""
    if not isinstance(url, str):
        raise InvalidRecordError(f"SigningCertURL must be a string, got {url!r}", UNTRUSTED_CERTIFICATE_URL)
    if not URL_CHARACTERS.fullmatch(url):
        raise InvalidRecordError(
            f"SigningCertURL {url!r} contains spaces or non-printable characters", UNTRUSTED_CERTIFICATE_URL
        )
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise InvalidRecordError(
            f"SigningCertURL {url!r} must use https, not {parts.scheme!r}", UNTRUSTED_CERTIFICATE_URL
        )
    if "@" in parts.netloc:
        raise InvalidRecordError(
            f"SigningCertURL {url!r} must not carry user information", UNTRUSTED_CERTIFICATE_URL
        )
    if ":" in parts.netloc:
        raise InvalidRecordError(f"SigningCertURL {url!r} must not name a port", UNTRUSTED_CERTIFICATE_URL)
    if SNS_HOST.fullmatch(parts.netloc) is None:
        raise InvalidRecordError(
            f"SigningCertURL {url!r}: host {parts.netloc!r} is not an SNS endpoint "
            "(sns.<region>.amazonaws.com)",
            UNTRUSTED_CERTIFICATE_URL,
        )
    region = _topic_region(topic_arn)
    expected = f"sns.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else "")
    if parts.netloc != expected:
        raise InvalidRecordError(
            f"SigningCertURL {url!r}: host {parts.netloc!r} is not the topic's region's SNS endpoint "
            f"{expected!r}",
            UNTRUSTED_CERTIFICATE_URL,
        )
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise InvalidRecordError(
            f"SigningCertURL {url!r} must not have a query or a fragment", UNTRUSTED_CERTIFICATE_URL
        )
    if not CERTIFICATE_PATH.fullmatch(parts.path):
        raise InvalidRecordError(
            f"SigningCertURL {url!r}: path {parts.path!r} is not one .pem file name",
            UNTRUSTED_CERTIFICATE_URL,
        )
    return url


def signed_envelope(envelope: Mapping[str, object]) -> SignedEnvelope:
    """Every check that needs no certificate: fields, signature version and encoding, certificate URL."""
    signed = string_to_sign(envelope)
    version = envelope.get("SignatureVersion")
    if version != SIGNATURE_VERSION:
        raise InvalidRecordError(
            f"SignatureVersion {version!r} is not accepted; only {SIGNATURE_VERSION!r} (SHA256withRSA) is",
            BAD_SIGNATURE,
        )
    encoded = envelope.get("Signature")
    if not isinstance(encoded, str) or not encoded:
        raise InvalidRecordError(
            f"SNS envelope field Signature must be a base64 string, got {encoded!r}", BAD_SIGNATURE
        )
    try:
        signature = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise InvalidRecordError(
            f"Signature {encoded[:40]!r}... is not valid base64", BAD_SIGNATURE
        ) from None
    url = certificate_url(envelope.get("SigningCertURL"), envelope.get("TopicArn"))
    return SignedEnvelope(string_to_sign=signed, signature=signature, certificate_url=url)


def verify_signature(signed: SignedEnvelope, certificate_pem: bytes) -> None:
    """Check the signature with the certificate's RSA key (SHA256, PKCS#1 v1.5); reject on any mismatch."""
    # Imported here: only a verification pays for it, not the handler's cold start.
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError:
        raise InvalidRecordError(
            f"the certificate at {signed.certificate_url} is not a PEM X.509 certificate", BAD_SIGNATURE
        ) from None
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidRecordError(
            f"the certificate at {signed.certificate_url} holds no RSA key but a {type(key).__name__}",
            BAD_SIGNATURE,
        )
    try:
        key.verify(signed.signature, signed.string_to_sign, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise InvalidRecordError(
            f"SNS signature does not match the envelope (certificate {signed.certificate_url})", BAD_SIGNATURE
        ) from None


def verify_envelope(envelope: Mapping[str, object], certificate_pem: bytes) -> None:
    """Verify a Notification envelope against the PEM certificate its SigningCertURL names."""
    verify_signature(signed_envelope(envelope), certificate_pem)


class SignatureVerifier:
    """Verifies envelopes with certificates from `fetch`, the trust anchor (SNS over HTTPS in Lambda)."""

    def __init__(self, fetch: CertificateFetch) -> None:
        self._fetch = fetch

    def verify(self, envelope: Mapping[str, object]) -> None:
        # Every offline check first: a malformed envelope never makes a request.
        signed = signed_envelope(envelope)
        verify_signature(signed, self._fetch(signed.certificate_url))


def _topic_region(topic_arn: object) -> str:
    parts = topic_arn.split(":") if isinstance(topic_arn, str) else []
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sns" or not parts[3]:
        raise InvalidRecordError(f"TopicArn {topic_arn!r} is not an SNS topic ARN", UNTRUSTED_CERTIFICATE_URL)
    return parts[3]
