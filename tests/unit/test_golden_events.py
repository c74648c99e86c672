"""Golden events: every file's provenance holds, the genuine SNS signature verifies through the
product's verifier and no changed byte does, a SignatureVersion 1 message is refused, the golden
delivery verifies, and AWS's documented lifecycle events parse to the action they describe."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cloud.sns_certificates import certificate, install_certificate_source
from consumers.metrics import Outcome
from consumers.signatures import SignatureVerifier
from schemas.errors import InvalidRecordError
from schemas.events import MembershipSnapshot, parse_snapshot
from schemas.lifecycle import LifecycleAction, Place, parse_producer_event
from schemas.settings import Settings
from tests.fakes import FakeOutcomes, fake_consumer
from tests.support.golden import EVENTS, golden, shape

GENUINE_V2 = "aws/java_sns_v2_sha256"
GENUINE_V1 = ("aws/java_sns_v1_with_subject", "aws/java_sns_v1_no_subject")
SNS_CERTIFICATE = EVENTS / "aws/java_sns_signing_cert_7506a1e3.pem"
MOTO_CERTIFICATE = EVENTS / "moto_sns_signing_cert.pem"
PROVENANCE_ROW = re.compile(r"^\| `(?P<file>[^`]+)` \|.*\| `(?P<sha256>[0-9a-f]{64})` \|$", re.MULTILINE)


class ShippedCertificate:
    """The trust anchor in the tests: serves one shipped PEM, for the one URL it was fetched from."""

    def __init__(self, url: str, pem: bytes) -> None:
        self.url, self.pem = url, pem
        self.fetched: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        assert url == self.url, f"the verifier asked for {url}, not the certificate the message names"
        return self.pem


def genuine_verifier(envelope: dict[str, Any]) -> tuple[SignatureVerifier, ShippedCertificate]:
    shipped = ShippedCertificate(envelope["SigningCertURL"], SNS_CERTIFICATE.read_bytes())
    return SignatureVerifier(shipped), shipped


def with_character_changed(text: str, index: int) -> str:
    return text[:index] + ("x" if text[index] != "x" else "y") + text[index + 1 :]


# -- provenance ------------------------------------------------------------------------------------


def test_every_golden_file_is_listed_with_its_source_and_its_bytes_are_the_ones_listed() -> None:
    listed = {
        row["file"]: row["sha256"] for row in PROVENANCE_ROW.finditer((EVENTS / "README.md").read_text())
    }
    present = {
        path.relative_to(EVENTS).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in EVENTS.rglob("*")
        if path.is_file() and path.name != "README.md"
    }
    assert present == listed


# -- a genuine SignatureVersion 2 message, signed by SNS ------------------------------------------


def test_the_genuine_signature_version_2_message_verifies_with_the_certificate_its_url_names() -> None:
    # GIVEN the shipped certificate installed as the product's trust anchor (SNS over HTTPS in Lambda)
    envelope = golden(GENUINE_V2)
    shipped = ShippedCertificate(envelope["SigningCertURL"], SNS_CERTIFICATE.read_bytes())
    install_certificate_source(shipped)
    try:
        # WHEN the consumer's verifier, wired as its composition root wires it, checks the message
        SignatureVerifier(certificate).verify(envelope)
    finally:
        install_certificate_source(None)

    # THEN it passes, with the one certificate its SigningCertURL names
    assert shipped.fetched == [envelope["SigningCertURL"]]


@pytest.mark.parametrize("field", ["Message", "MessageId", "Timestamp", "TopicArn", "Type"])
def test_a_change_of_any_one_byte_of_a_signed_field_is_rejected(field: str) -> None:
    envelope = golden(GENUINE_V2)
    verifier, _ = genuine_verifier(envelope)
    value: str = envelope[field]

    for index in range(len(value)):
        tampered = envelope | {field: with_character_changed(value, index)}
        with pytest.raises(InvalidRecordError) as rejected:
            verifier.verify(tampered)
        # A changed region or ARN fails the certificate-URL policy before the signature is checked.
        assert rejected.value.reason in {"bad-signature", "untrusted-certificate-url"}, (field, index)


@pytest.mark.parametrize("index", [0, 128, 255])
def test_a_change_of_one_byte_of_the_signature_is_rejected(index: int) -> None:
    envelope = golden(GENUINE_V2)
    verifier, _ = genuine_verifier(envelope)
    signature = bytearray(base64.b64decode(envelope["Signature"]))
    signature[index] ^= 0x01

    with pytest.raises(InvalidRecordError, match="signature does not match"):
        verifier.verify(envelope | {"Signature": base64.b64encode(signature).decode()})


def test_a_subject_added_to_the_genuine_message_is_rejected() -> None:
    envelope = golden(GENUINE_V2)
    verifier, _ = genuine_verifier(envelope)

    with pytest.raises(InvalidRecordError, match="signature does not match"):
        verifier.verify(envelope | {"Subject": "added"})


def test_a_field_sns_does_not_sign_may_change_without_breaking_the_signature() -> None:
    envelope = golden(GENUINE_V2)
    verifier, _ = genuine_verifier(envelope)

    verifier.verify(envelope | {"UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Other"})


@pytest.mark.parametrize("name", GENUINE_V1)
def test_a_genuine_signature_version_1_message_is_refused_as_unsupported_without_a_fetch(name: str) -> None:
    # GIVEN a message SNS really signed with SignatureVersion 1 (SHA1withRSA), checked here
    # independently of the product
    envelope = golden(name)
    assert signed_with_sha1_by_sns(envelope)
    verifier, shipped = genuine_verifier(envelope)

    # WHEN the product verifies it THEN it is refused for its version, before any certificate fetch
    with pytest.raises(InvalidRecordError, match="SignatureVersion '1' is not accepted") as refused:
        verifier.verify(envelope)
    assert refused.value.reason == "bad-signature"
    assert shipped.fetched == []


def signed_with_sha1_by_sns(envelope: dict[str, Any]) -> bool:
    """The AWS documentation's string to sign, checked with SHA1 against SNS's certificate."""
    names = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
    signed = "".join(f"{name}\n{envelope[name]}\n" for name in names if name in envelope)
    key = x509.load_pem_x509_certificate(SNS_CERTIFICATE.read_bytes()).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(base64.b64decode(envelope["Signature"]), signed.encode(), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    return True


# -- the golden delivery: a snapshot the product published, signed by moto's SNS ------------------


def golden_delivery() -> tuple[dict[str, Any], dict[str, Any]]:
    (record,) = golden("sqs_snapshot_batch")["Records"]
    envelope: dict[str, Any] = json.loads(record["body"])
    return record, envelope


def consumer_of_the_golden_delivery(envelope: dict[str, Any], outcomes: FakeOutcomes) -> Any:
    snapshot = parse_snapshot(envelope["Message"])
    settings = Settings.from_env(
        {
            "SGMESH_CLUSTER": snapshot.cluster,
            "SGMESH_TABLE_NAME": "sgmesh-demo",
            "AWS_REGION": snapshot.source.region,
            "SGMESH_SECURITY_GROUP_IDS": "sg-0aaaaaaaaaaaaaaa1",
            "SGMESH_PORTS": "tcp:7000-7001",
            "SGMESH_PEER_TOPIC_ARNS": envelope["TopicArn"],
        }
    )
    moto = ShippedCertificate(envelope["SigningCertURL"], MOTO_CERTIFICATE.read_bytes())
    return fake_consumer(
        settings,
        outcomes=outcomes,
        clock=lambda: snapshot.produced_at + timedelta(seconds=30),
        verify=SignatureVerifier(moto).verify,
    )


def test_the_golden_delivery_verifies_and_its_snapshot_is_accepted() -> None:
    record, envelope = golden_delivery()
    assert envelope["SignatureVersion"] == "2"
    consumer = consumer_of_the_golden_delivery(envelope, FakeOutcomes())

    accepted: MembershipSnapshot = consumer.accept(record["body"], record["messageId"])

    assert accepted == parse_snapshot(envelope["Message"])
    assert accepted.cause.kind == "trueup"
    assert len(accepted.members) == 1


def test_a_changed_byte_in_the_golden_delivery_is_rejected_and_counted() -> None:
    record, envelope = golden_delivery()
    outcomes = FakeOutcomes()
    consumer = consumer_of_the_golden_delivery(envelope, outcomes)
    address = parse_snapshot(envelope["Message"]).members[0].public_ipv4
    assert address is not None
    # A member's address, one digit off: still a valid snapshot, so only the signature can catch it.
    forged = envelope["Message"].replace(address, with_character_changed(address, address.index("/") - 1))
    body = json.dumps(envelope | {"Message": forged})

    with pytest.raises(InvalidRecordError, match="signature does not match"):
        consumer.accept(body, record["messageId"])
    assert outcomes.reasons == {(Outcome.REJECTED, "bad-signature"): 1}


def test_the_golden_delivery_has_the_shape_of_a_real_sns_to_sqs_delivery() -> None:
    record, envelope = golden_delivery()
    (real,) = golden("aws/powertools_snsSqsEvent")["Records"]
    real_envelope = json.loads(real["body"])

    assert shape(record) == shape(real)
    # sgmesh publishes with message attributes (cluster, type); the real publisher set none.
    assert shape({k: v for k, v in envelope.items() if k != "MessageAttributes"}) == shape(real_envelope)


# -- AWS's documented lifecycle events ------------------------------------------------------------


def in_documented_group(
    hook: str, token: str, *, launching: bool, origin: Place | None = None, destination: Place | None = None
) -> LifecycleAction:
    """An action on the group and instance every documented example names."""
    return LifecycleAction("my-asg", "i-1234567890abcdef0", hook, token, launching, origin, destination)


DOCUMENTED_ACTIONS = {
    "aws/doc_eventref_launch": in_documented_group(
        "my-lifecycle-hook",
        "87654321-4321-4321-4321-210987654321",
        launching=True,
    ),
    "aws/doc_eventref_terminate": in_documented_group(
        "my-lifecycle-hook",
        "87654321-4321-4321-4321-210987654321",
        launching=False,
    ),
    "aws/lambdago_autoscaling_terminate_no_metadata": in_documented_group(
        "my-lifecycle-hook",
        "87654321-4321-4321-4321-210987654321",
        launching=False,
    ),
    "aws/doc_live_eventref_launch_with_origin_destination": in_documented_group(
        "my-lifecycle-hook",
        "87654321-4321-4321-4321-210987654321",
        launching=True,
        origin=Place.EC2,
        destination=Place.GROUP,
    ),
    "aws/doc_warmpool_ex1_launch_ec2_to_warmpool": in_documented_group(
        "my-launch-lifecycle-hook",
        "71514b9d-6a40-4b26-8523-05e7eEXAMPLE",
        launching=True,
        origin=Place.EC2,
        destination=Place.WARM_POOL,
    ),
    "aws/doc_warmpool_ex2_launch_warmpool_to_asg": in_documented_group(
        "my-launch-lifecycle-hook",
        "19cc4d4a-e450-4d1c-b448-0de67EXAMPLE",
        launching=True,
        origin=Place.WARM_POOL,
        destination=Place.GROUP,
    ),
    "aws/doc_warmpool_ex3_launch_ec2_to_asg": in_documented_group(
        "my-launch-lifecycle-hook",
        "87654321-4321-4321-4321-21098EXAMPLE",
        launching=True,
        origin=Place.EC2,
        destination=Place.GROUP,
    ),
    "aws/doc_warmpool_ex4_terminate_asg_to_warmpool": in_documented_group(
        "my-termination-lifecycle-hook",
        "42694b3d-4b70-6a62-8523-09a1eEXAMPLE",
        launching=False,
        origin=Place.GROUP,
        destination=Place.WARM_POOL,
    ),
}
JOINS_GROUP = {
    "aws/doc_eventref_launch",
    "aws/doc_live_eventref_launch_with_origin_destination",
    "aws/doc_warmpool_ex2_launch_warmpool_to_asg",
    "aws/doc_warmpool_ex3_launch_ec2_to_asg",
}


def test_the_documented_events_cover_what_real_events_may_leave_out() -> None:
    details = {name: golden(name)["detail"] for name in DOCUMENTED_ACTIONS}
    assert any("NotificationMetadata" not in detail for detail in details.values())
    assert any("Origin" not in detail and "Destination" not in detail for detail in details.values())
    assert {(d.get("Origin"), d.get("Destination")) for d in details.values()} >= {
        ("EC2", "WarmPool"),
        ("WarmPool", "AutoScalingGroup"),
        ("EC2", "AutoScalingGroup"),
        ("AutoScalingGroup", "WarmPool"),
    }


@pytest.mark.parametrize("name", sorted(DOCUMENTED_ACTIONS))
def test_a_documented_lifecycle_event_parses_to_the_action_it_describes(name: str) -> None:
    action = parse_producer_event(golden(name))

    assert action == DOCUMENTED_ACTIONS[name]
    assert isinstance(action, LifecycleAction)
    assert action.joins_group is (name in JOINS_GROUP)


@pytest.mark.parametrize(
    ("ours", "documented"),
    [
        ("lifecycle_launch", "aws/doc_live_eventref_launch_with_origin_destination"),
        ("lifecycle_terminate", "aws/doc_warmpool_ex4_terminate_asg_to_warmpool"),
        ("lifecycle_launch_into_warm_pool", "aws/doc_warmpool_ex1_launch_ec2_to_warmpool"),
        ("lifecycle_launch_from_warm_pool", "aws/doc_warmpool_ex2_launch_warmpool_to_asg"),
        ("lifecycle_terminate_into_warm_pool", "aws/doc_warmpool_ex4_terminate_asg_to_warmpool"),
        ("lifecycle_terminate_from_warm_pool", "aws/doc_warmpool_ex4_terminate_asg_to_warmpool"),
    ],
)
def test_our_lifecycle_events_have_exactly_the_keys_and_types_of_the_documented_ones(
    ours: str, documented: str
) -> None:
    event, reference = golden(ours), golden(documented)

    assert shape(event) == shape(reference)
    assert list(event) == list(reference)
    assert list(event["detail"]) == list(reference["detail"])
    fixed = ("version", "detail-type", "source")
    assert [event[key] for key in fixed] == [reference[key] for key in fixed]
    assert event["detail"]["LifecycleTransition"] == reference["detail"]["LifecycleTransition"]
