"""SNS signatures end to end: what the embedded SNS delivers verifies with its certificates, a changed
character does not, and the HTTPS source trusts only verified TLS, without redirects or large bodies."""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from cloud.sns_certificates import (
    certificate,
    fetch_over_https,
    install_certificate_source,
)
from consumers.signatures import SignatureVerifier
from schemas.errors import CertificateUnavailableError, InvalidRecordError
from sgmesh.local.sns_certificates import install_local_certificates, moto_certificate_source
from tests.support.mesh import Mesh


@pytest.fixture
def local_certificates(aws: str) -> Iterator[SignatureVerifier]:
    """The verifier as the local runtime wires it: certificates from the embedded SNS."""
    install_local_certificates(aws)
    yield SignatureVerifier(certificate)
    install_certificate_source(None)


def deliver(topic_region: str, queue_region: str, message: str) -> dict[str, Any]:
    """Publish `message` to a new topic and return the envelope its SQS subscriber received."""
    sns = boto3.client("sns", region_name=topic_region)
    sqs = boto3.client("sqs", region_name=queue_region)
    topic_arn = sns.create_topic(Name="sgmesh-signed")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="sgmesh-signed")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn["QueueArn"])
    sns.publish(TopicArn=topic_arn, Message=message)
    (received,) = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)["Messages"]
    envelope: dict[str, Any] = json.loads(received["Body"])
    return envelope


def flip_one_character(text: str) -> str:
    middle = len(text) // 2
    return text[:middle] + ("x" if text[middle] != "x" else "y") + text[middle + 1 :]


@pytest.mark.parametrize(
    ("topic_region", "queue_region"), [("us-east-1", "us-east-1"), ("us-west-2", "eu-west-1")]
)
def test_a_delivery_verifies_and_a_flipped_character_in_its_message_does_not(
    local_certificates: SignatureVerifier, topic_region: str, queue_region: str
) -> None:
    # GIVEN a message the embedded SNS signed and delivered (also across regions)
    envelope = deliver(topic_region, queue_region, json.dumps({"members": ["203.0.113.9"]}))
    assert envelope["SigningCertURL"].startswith(f"https://sns.{topic_region}.amazonaws.com/")
    # WHEN it is verified as received THEN it passes
    local_certificates.verify(envelope)
    # WHEN one character of its Message is changed THEN it is rejected
    tampered = envelope | {"Message": flip_one_character(envelope["Message"])}
    with pytest.raises(InvalidRecordError, match="signature does not match"):
        local_certificates.verify(tampered)


def test_every_snapshot_the_product_publishes_arrives_signed(
    local_certificates: SignatureVerifier, mesh: Mesh
) -> None:
    # GIVEN every region's true-up published its snapshot to its own topic
    for region in mesh.regions:
        mesh.trueup(region)
    # WHEN eu-west-1 takes them off its queue
    envelopes = [json.loads(message["Body"]) for message in mesh.drain("eu-west-1")]
    # THEN one from each region's topic arrived, and each verifies
    assert sorted(envelope["TopicArn"].split(":")[3] for envelope in envelopes) == sorted(mesh.regions)
    for envelope in envelopes:
        local_certificates.verify(envelope)


def test_the_local_source_serves_only_certificates_the_embedded_sns_made(aws: str) -> None:
    fetch = moto_certificate_source(aws)
    envelope = deliver("us-west-2", "us-west-2", "hello")
    assert fetch(envelope["SigningCertURL"]).startswith(b"-----BEGIN CERTIFICATE-----")
    unknown = "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-0000.pem"
    with pytest.raises(CertificateUnavailableError, match="has no certificate"):
        fetch(unknown)
    with pytest.raises(CertificateUnavailableError, match="not a certificate URL of the embedded SNS"):
        fetch("https://evil.example/SimpleNotificationService-0000.pem")


# -- the HTTPS source, against a local TLS server -------------------------------------------------

PEM_BODY = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/redirect.pem":
            self.send_response(302)
            self.send_header("Location", "/ok.pem")
            self.end_headers()
            return
        body = {"/ok.pem": PEM_BODY, "/large.pem": b"x" * 20_000}.get(self.path)
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on what the client saw."""


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ssl.SSLContext]]:
    """A TLS server on loopback with a self-signed certificate, and a client context trusting it."""
    directory = tmp_path_factory.mktemp("tls")
    certificate_path, key_path = _self_signed(directory)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certificate_path, key_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(certificate_path))
    yield f"https://127.0.0.1:{server.server_address[1]}", client_context
    server.shutdown()
    server.server_close()
    thread.join()


def test_the_https_source_refuses_a_server_the_trust_store_does_not_vouch_for(
    tls_server: tuple[str, ssl.SSLContext],
) -> None:
    base, _trusting = tls_server
    with pytest.raises(CertificateUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
        fetch_over_https(f"{base}/ok.pem")


def test_the_https_source_returns_the_body_a_trusted_server_sends(
    tls_server: tuple[str, ssl.SSLContext],
) -> None:
    base, trusting = tls_server
    assert fetch_over_https(f"{base}/ok.pem", context=trusting) == PEM_BODY


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/redirect.pem", "does not exist \\(HTTP 302\\)"),
        ("/missing.pem", "does not exist \\(HTTP 404\\)"),
    ],
)
def test_a_certificate_the_host_does_not_serve_rejects_the_record_instead_of_retrying_it(
    tls_server: tuple[str, ssl.SSLContext], path: str, reason: str
) -> None:
    base, trusting = tls_server
    with pytest.raises(InvalidRecordError, match=reason) as rejected:
        fetch_over_https(f"{base}{path}", context=trusting)
    assert rejected.value.reason == "bad-signature"


def test_a_body_too_large_for_a_certificate_is_refused(tls_server: tuple[str, ssl.SSLContext]) -> None:
    base, trusting = tls_server
    with pytest.raises(CertificateUnavailableError, match="is larger than 16384 bytes"):
        fetch_over_https(f"{base}/large.pem", context=trusting)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate_ = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "server.pem", directory / "server.key"
    certificate_path.write_bytes(certificate_.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_path, key_path
