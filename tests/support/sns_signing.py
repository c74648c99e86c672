"""A stand-in for SNS's signing key: signs envelopes the way SNS does and serves its certificate."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

CERTIFICATE_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
TOPIC_ARN = "arn:aws:sns:eu-west-1:111111111111:sgmesh-prod"


def certificate_url_for(topic_arn: str) -> str:
    """Where SNS in the topic's region would serve the signing certificate."""
    region = topic_arn.split(":")[3]
    return f"https://sns.{region}.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"


class SnsSigner:
    """One RSA key and its self-signed certificate, like one of SNS's signing keys."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self.key = key
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        self.certificate_pem = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
        )

    def sign(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """The envelope with SignatureVersion 2, its Signature and (unless it has one) the SigningCertURL
        of its topic's region."""
        # Written out field by field, independently of the code under test, as the AWS docs give it.
        subject = f"Subject\n{envelope['Subject']}\n" if "Subject" in envelope else ""
        signed = (
            f"Message\n{envelope['Message']}\nMessageId\n{envelope['MessageId']}\n{subject}"
            f"Timestamp\n{envelope['Timestamp']}\nTopicArn\n{envelope['TopicArn']}\n"
            f"Type\n{envelope['Type']}\n"
        )
        signature = self.key.sign(signed.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        return {
            "SigningCertURL": certificate_url_for(envelope["TopicArn"]),
            **envelope,
            "SignatureVersion": "2",
            "Signature": base64.b64encode(signature).decode("ascii"),
        }


@cache
def sns_signer() -> SnsSigner:
    """The tests' SNS key, made once per process (RSA key generation is slow)."""
    return SnsSigner(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@cache
def other_signer() -> SnsSigner:
    """A key SNS never used: what a forger signs with."""
    return SnsSigner(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def notification(message: str = '{"hello": "world"}', **fields: str) -> dict[str, Any]:
    """An unsigned Notification envelope as SNS delivers it to SQS (raw delivery off)."""
    return {
        "Type": "Notification",
        "MessageId": "5b6f2f5e-3c1a-4a8e-9d1e-2f0c7f1f0a11",
        "TopicArn": TOPIC_ARN,
        "Message": message,
        "Timestamp": "2025-06-01T12:00:00.000Z",
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
        **fields,
    }
