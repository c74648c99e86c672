"""SNS signature verification: only envelopes SNS signed, with a certificate SNS serves, pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from cloud.sns_certificates import (
    CachedCertificates,
    certificate,
    fetch_over_https,
    install_certificate_source,
)
from consumers.signatures import (
    SignatureVerifier,
    certificate_url,
    string_to_sign,
    verify_envelope,
)
from schemas.errors import CertificateUnavailableError, InvalidRecordError
from tests.support.sns_signing import CERTIFICATE_URL, TOPIC_ARN, notification, other_signer, sns_signer

SIGNED_FIELDS = ("Message", "MessageId", "Timestamp", "TopicArn", "Type", "Subject")


def signed(**fields: str) -> dict[str, Any]:
    return sns_signer().sign(notification(**fields))


def test_the_string_to_sign_is_the_documented_one_with_subject_between_message_id_and_timestamp() -> None:
    envelope = notification(message="m", Subject="s")
    assert string_to_sign(envelope) == (
        b"Message\nm\nMessageId\n5b6f2f5e-3c1a-4a8e-9d1e-2f0c7f1f0a11\nSubject\ns\n"
        b"Timestamp\n2025-06-01T12:00:00.000Z\nTopicArn\narn:aws:sns:eu-west-1:111111111111:sgmesh-prod\n"
        b"Type\nNotification\n"
    )


@pytest.mark.parametrize("fields", [{}, {"Subject": "sgmesh"}], ids=["no subject", "subject"])
def test_an_envelope_signed_by_sns_verifies(fields: dict[str, str]) -> None:
    verify_envelope(signed(**fields), sns_signer().certificate_pem)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Message", '{"hello": "world!"}'),
        ("MessageId", "5b6f2f5e-3c1a-4a8e-9d1e-2f0c7f1f0a12"),
        ("Timestamp", "2025-06-01T12:00:00.001Z"),
        ("TopicArn", "arn:aws:sns:eu-west-1:111111111111:other-cluster"),
        ("TopicArn", "arn:aws:sns:eu-west-1:222222222222:sgmesh-prod"),
        ("Subject", "added after signing"),
    ],
)
def test_changing_a_signed_field_after_signing_is_rejected(field: str, value: str) -> None:
    envelope = signed() | {field: value}
    with pytest.raises(InvalidRecordError, match="signature does not match"):
        verify_envelope(envelope, sns_signer().certificate_pem)


@pytest.mark.parametrize("change", ["altered", "removed"])
def test_altering_or_removing_a_signed_subject_is_rejected(change: str) -> None:
    envelope = signed(Subject="sgmesh")
    if change == "removed":
        del envelope["Subject"]
    else:
        envelope["Subject"] = "sgmesh!"
    with pytest.raises(InvalidRecordError, match="signature does not match"):
        verify_envelope(envelope, sns_signer().certificate_pem)


def test_an_envelope_signed_with_another_key_is_rejected() -> None:
    forged = other_signer().sign(notification())
    with pytest.raises(InvalidRecordError, match="signature does not match"):
        verify_envelope(forged, sns_signer().certificate_pem)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("SignatureVersion", "1", r"SignatureVersion '1' is not accepted; only '2'"),
        ("SignatureVersion", 2, r"SignatureVersion 2 is not accepted"),
        ("SignatureVersion", "3", r"SignatureVersion '3' is not accepted"),
        ("SignatureVersion", None, r"SignatureVersion None is not accepted"),
        ("Signature", "", r"Signature must be a base64 string, got ''"),
        ("Signature", "not base64!", r"Signature 'not base64!'... is not valid base64"),
        ("Signature", None, r"Signature must be a base64 string, got None"),
        ("Type", "SubscriptionConfirmation", r"Type 'SubscriptionConfirmation' is not a signed Notification"),
        ("Message", None, r"field Message must be a string, got None"),
        ("MessageId", 7, r"field MessageId must be a string, got 7"),
        ("Timestamp", None, r"field Timestamp must be a string, got None"),
        ("TopicArn", None, r"field TopicArn must be a string, got None"),
        ("Subject", 1, r"field Subject must be a string, got 1"),
        ("SigningCertURL", None, r"SigningCertURL must be a string, got None"),
    ],
)
def test_a_missing_or_malformed_field_is_rejected_by_name(field: str, value: object, reason: str) -> None:
    envelope = signed()
    if value is None:
        envelope.pop(field)
    else:
        envelope[field] = value
    with pytest.raises(InvalidRecordError, match=reason):
        verify_envelope(envelope, sns_signer().certificate_pem)


def test_a_subject_of_null_is_an_absent_subject() -> None:
    verify_envelope(signed() | {"Subject": None}, sns_signer().certificate_pem)


URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (URL.replace("https:", "http:"), "must use https, not 'http'"),
        (URL.replace("https://", "https://sns.eu-west-1.amazonaws.com@"), "must not carry user information"),
        (URL.replace("https://", "https://evil.example@"), "must not carry user information"),
        (URL.replace(".com/", ".com:443/"), "must not name a port"),
        (URL.replace(".com/", ".com:8443/"), "must not name a port"),
        (URL.replace("sns.eu-west-1.amazonaws.com", "evil.example"), "host 'evil.example' is not an SNS"),
        (URL.replace(".com/", ".com.evil.example/"), "is not an SNS endpoint"),
        (URL.replace(".com/", ".co/"), "is not an SNS endpoint"),
        (URL.replace(".com/", ".com./"), "is not an SNS endpoint"),
        (URL.replace("sns.", "SNS."), "is not an SNS endpoint"),
        (URL.replace("sns.", "sqs."), "is not an SNS endpoint"),
        (URL.replace("sns.", "x.sns."), "is not an SNS endpoint"),
        (URL.replace("eu-west-1", "us-east-1"), "is not the topic's region's SNS endpoint"),
        (URL.replace(".com/", ".com.cn/"), "is not the topic's region's SNS endpoint"),
        (URL + "?x=1", "must not have a query or a fragment"),
        (URL + "?", "must not have a query or a fragment"),
        (URL + "#x", "must not have a query or a fragment"),
        (URL.replace(".pem", ".crt"), "is not one .pem file name"),
        (URL.replace("/Simple", "/certs/Simple"), "is not one .pem file name"),
        (URL.replace("/Simple", "/%2e%2e/Simple"), "is not one .pem file name"),
        (URL.replace("/Simple", "/../Simple"), "is not one .pem file name"),
        ("https://sns.eu-west-1.amazonaws.com/.pem", "is not one .pem file name"),
        ("https://sns.eu-west-1.amazonaws.com", "is not one .pem file name"),
        (URL.replace("/Simple", "\n/Simple"), "spaces or non-printable characters"),
        (URL.replace("https:", "https:\t"), "spaces or non-printable characters"),
        (URL + " ", "spaces or non-printable characters"),
        (URL.replace("sns", "sn\u0455", 1), "spaces or non-printable characters"),
        ("", "spaces or non-printable characters"),
        (None, "SigningCertURL must be a string, got None"),
        (["https://sns.eu-west-1.amazonaws.com/x.pem"], "SigningCertURL must be a string"),
    ],
)
def test_a_certificate_url_sns_would_not_serve_is_rejected_with_the_reason(url: object, reason: str) -> None:
    with pytest.raises(InvalidRecordError, match=reason.replace(".", r"\.").replace("?", r"\?")):
        certificate_url(url, TOPIC_ARN)


@pytest.mark.parametrize(
    ("url", "topic_arn"),
    [
        (URL, TOPIC_ARN),
        (
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
            "arn:aws-cn:sns:cn-north-1:111111111111:sgmesh-prod",
        ),
        (
            "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "arn:aws-us-gov:sns:us-gov-west-1:111111111111:sgmesh-prod",
        ),
    ],
)
def test_the_topic_regions_sns_endpoint_is_accepted(url: str, topic_arn: str) -> None:
    assert certificate_url(url, topic_arn) == url


@pytest.mark.parametrize(
    "topic_arn", [None, "sgmesh-prod", "arn:aws:sqs:eu-west-1:111111111111:q", "arn:aws:sns"]
)
def test_a_certificate_url_is_only_checked_against_a_topic_arn(topic_arn: object) -> None:
    with pytest.raises(InvalidRecordError, match="is not an SNS topic ARN"):
        certificate_url(URL, topic_arn)


def test_a_certificate_that_is_not_pem_or_not_rsa_is_rejected() -> None:
    envelope = signed()
    with pytest.raises(InvalidRecordError, match=r"is not a PEM X\.509 certificate"):
        verify_envelope(envelope, b"-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n")
    with pytest.raises(InvalidRecordError, match="holds no RSA key"):
        verify_envelope(envelope, _ec_certificate())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Message": "changed"}, "bad-signature"),
        ({"SignatureVersion": "1"}, "bad-signature"),
        ({"SigningCertURL": "https://evil.example/x.pem"}, "untrusted-certificate-url"),
    ],
)
def test_rejections_carry_a_metric_label_for_signatures_or_for_certificate_urls(
    change: dict[str, str], reason: str
) -> None:
    with pytest.raises(InvalidRecordError) as rejected:
        verify_envelope(signed() | change, sns_signer().certificate_pem)
    assert rejected.value.reason == reason


@given(field=st.sampled_from(SIGNED_FIELDS), value=st.text(max_size=40))
def test_any_change_to_a_signed_field_is_rejected(field: str, value: str) -> None:
    # GIVEN an envelope SNS signed (with a Subject, so that it too is a signed field)
    original = _signed_with_subject()
    # WHEN any one signed field is given any other value
    tampered = original | {field: value}
    if value == original[field]:
        return
    # THEN it is rejected (by the signature, or earlier by the URL policy for another topic)
    with pytest.raises(InvalidRecordError):
        verify_envelope(tampered, sns_signer().certificate_pem)


@given(message=st.text(), subject=st.none() | st.text(min_size=1, max_size=100))
def test_any_message_and_subject_sns_signed_verifies(message: str, subject: str | None) -> None:
    fields = {} if subject is None else {"Subject": subject}
    verify_envelope(sns_signer().sign(notification(message, **fields)), sns_signer().certificate_pem)


def test_the_verifier_checks_everything_offline_before_fetching_the_certificate() -> None:
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return sns_signer().certificate_pem

    verifier = SignatureVerifier(fetch)
    verifier.verify(signed())
    assert fetched == [CERTIFICATE_URL]
    for bad in (
        signed() | {"SignatureVersion": "1"},
        signed() | {"SigningCertURL": "https://evil.example/x.pem"},
    ):
        with pytest.raises(InvalidRecordError):
            verifier.verify(bad)
    assert fetched == [CERTIFICATE_URL]


def test_certificates_are_fetched_once_per_url_and_the_least_recently_used_leaves_first() -> None:
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return url.encode()

    cache = CachedCertificates(fetch, size=2)
    assert [cache(url) for url in ("a", "b", "a", "c", "a", "b")] == [b"a", b"b", b"a", b"c", b"a", b"b"]
    # "b" was the least recently used when "c" came in, so only "b" is fetched twice.
    assert fetched == ["a", "b", "c", "b"]


def test_a_failed_fetch_is_remembered_briefly_then_fetched_again() -> None:
    # GIVEN an SNS endpoint that times out once, then answers
    attempts: list[str] = []
    now = [0.0]

    def flaky(url: str) -> bytes:
        attempts.append(url)
        if len(attempts) == 1:
            raise CertificateUnavailableError("timed out")
        return b"pem"

    cache = CachedCertificates(flaky, failure_seconds=60, clock=lambda: now[0])

    # WHEN the ten records of a batch ask for the certificate within the minute
    for _record in range(10):
        with pytest.raises(CertificateUnavailableError, match="timed out"):
            cache("u")

    # THEN each fails (to be retried), but only the first waited for the endpoint; a minute later the
    # URL is fetched again
    assert attempts == ["u"]
    now[0] = 60.0
    assert cache("u") == b"pem"
    assert attempts == ["u", "u"]


def test_a_remembered_failure_is_per_url_and_a_refusal_is_not_remembered() -> None:
    # GIVEN one URL whose endpoint is down and one whose certificate SNS does not serve
    attempts: list[str] = []

    def fetch(url: str) -> bytes:
        attempts.append(url)
        if url == "down":
            raise CertificateUnavailableError("timed out")
        raise InvalidRecordError("no such certificate", "bad-signature")

    cache = CachedCertificates(fetch, clock=lambda: 0.0)

    # WHEN each is asked for twice
    for url, error in (("down", CertificateUnavailableError), ("forged", InvalidRecordError)) * 2:
        with pytest.raises(error):
            cache(url)

    # THEN the outage is remembered for its URL only; a refusal says something of the message, so each
    # message's own URL is fetched
    assert attempts == ["down", "forged", "forged"]


def test_an_installed_source_replaces_the_trust_anchor_and_its_cache() -> None:
    install_certificate_source(lambda url: b"first")
    try:
        assert certificate(URL) == b"first"
        install_certificate_source(lambda url: b"second")
        assert certificate(URL) == b"second"
    finally:
        install_certificate_source(None)


def test_the_https_source_refuses_anything_but_https_without_a_request() -> None:
    with pytest.raises(CertificateUnavailableError, match="is not https"):
        fetch_over_https("http://127.0.0.1:1/x.pem")


@cache
def _signed_with_subject() -> dict[str, Any]:
    return sns_signer().sign(notification(Subject="sgmesh"))


def _ec_certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
