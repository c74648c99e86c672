"""Captures the golden snapshot delivery from moto: `python -m tests.support.capture_delivery`.

On a one-region local mesh (the embedded moto), the product's true-up publishes a snapshot to its
topic; moto's SNS signs it with SignatureVersion 2 and delivers it to the region's queue; the local
event source mapping hands it to the consumer, which verifies it. This writes that consumer's event
to tests/events/sqs_snapshot_batch.json and the certificate moto served for its SigningCertURL to
tests/events/moto_sns_signing_cert.pem (tests/events/README.md says what is whose).
"""

from __future__ import annotations

import json

from sgmesh.local.embedded import embedded_aws
from sgmesh.local.sns_certificates import moto_certificate_source
from tests.support.golden import EVENTS
from tests.support.mesh import Mesh

REGION = "us-east-1"


def main() -> None:
    with embedded_aws() as endpoint:
        mesh = Mesh(endpoint, (REGION,)).provision(instances_per_region=1)
        try:
            mesh.trueup(REGION)
            mesh.settle()
            (invocation,) = mesh.handled(REGION, "apply")
            (record,) = invocation.event["Records"]
            certificate_url = json.loads(record["body"])["SigningCertURL"]
            certificate = moto_certificate_source(endpoint)(certificate_url)
        finally:
            mesh.close()
    (EVENTS / "sqs_snapshot_batch.json").write_text(json.dumps(invocation.event, indent=2) + "\n")
    (EVENTS / "moto_sns_signing_cert.pem").write_bytes(certificate)
    print(f"captured a delivery signed for {certificate_url}")


if __name__ == "__main__":
    main()
