"""The local trust anchor: SNS signing certificates come from the embedded moto, not from AWS."""

from __future__ import annotations

import re

import requests

from cloud.sns_certificates import CertificateFetch, install_certificate_source
from schemas.errors import CertificateUnavailableError

# The URLs moto's SNS puts in SigningCertURL; the consumer's URL policy has already accepted the URL.
MOTO_CERTIFICATE_URL = re.compile(
    r"https://sns\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?P<path>/SimpleNotificationService-[0-9a-f]+\.pem)"
)


def moto_certificate_source(endpoint: str, timeout: float = 5.0) -> CertificateFetch:
    """Fetch SNS certificates from the moto server at `endpoint`.

    moto's server picks the service and region of an unsigned-looking request from a SigV4
    credential scope, not from the Host header, and keeps each certificate in its topic's region.
    """

    def fetch(url: str) -> bytes:
        match = MOTO_CERTIFICATE_URL.fullmatch(url)
        if match is None:
            raise CertificateUnavailableError(f"{url!r} is not a certificate URL of the embedded SNS")
        scope = f"sgmesh-local/20200101/{match['region']}/sns/aws4_request"
        response = requests.get(
            endpoint + match["path"],
            headers={
                "Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0"
            },
            timeout=timeout,
        )
        if response.status_code != 200:
            raise CertificateUnavailableError(
                f"the embedded SNS has no certificate for {url} (HTTP {response.status_code})"
            )
        return response.content

    return fetch


def install_local_certificates(endpoint: str) -> None:
    """Make the product trust the embedded SNS's certificates (LocalMesh.provision calls this)."""
    install_certificate_source(moto_certificate_source(endpoint))
