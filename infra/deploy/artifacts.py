"""Each region's artifact bucket (a small stack of its own) and the content-addressed uploads to it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from infra.build import CODE_ZIP, LAYER_ZIP
from infra.deploy.cloudformation import TemplateBody, deploy_stack, stack_outputs
from infra.deploy.template import ARTIFACTS_TEMPLATE
from schemas.names import ARTIFACTS_STACK

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KEY_PREFIX = "sgmesh/"


@dataclass(frozen=True)
class RegionArtifacts:
    bucket: str
    code_uri: str
    layer_uri: str


class ArtifactStore:
    """Puts the built code and layer, and the templates, in each region's bucket."""

    def __init__(self, session: boto3.session.Session, built: Path, log: Callable[[str], None]) -> None:
        self._session = session
        self._built = built
        self._log = log
        self._regions: dict[str, RegionArtifacts] = {}

    def region(self, region: str) -> RegionArtifacts:
        """The region's artifact bucket (its own stack) with the code and layer uploaded to it."""
        if region not in self._regions:
            cfn = self._session.client("cloudformation", region_name=region)
            body = TemplateBody(TemplateBody=ARTIFACTS_TEMPLATE.read_text())
            outcome = deploy_stack(cfn, ARTIFACTS_STACK, body, {}, {"sgmesh": "artifacts"})
            self._log(f"{region}: stack {ARTIFACTS_STACK} {outcome}")
            bucket = stack_outputs(cfn, ARTIFACTS_STACK)["BucketName"]
            code = self._upload(region, bucket, (self._built / CODE_ZIP).read_bytes(), "zip")
            layer = self._upload(region, bucket, (self._built / LAYER_ZIP).read_bytes(), "zip")
            self._regions[region] = RegionArtifacts(bucket, f"s3://{bucket}/{code}", f"s3://{bucket}/{layer}")
        return self._regions[region]

    def template_url(self, region: str, body: bytes) -> str:
        bucket = self.region(region).bucket
        key = self._upload(region, bucket, body, "json")
        return f"https://{bucket}.s3.{region}.amazonaws.com/{key}"

    def _upload(self, region: str, bucket: str, body: bytes, suffix: str) -> str:
        """Content-addressed, so an unchanged artifact keeps its key and its stack stays unchanged."""
        key = f"{KEY_PREFIX}{hashlib.sha256(body).hexdigest()}.{suffix}"
        s3: S3Client = self._session.client("s3", region_name=region)
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except ClientError:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        return key
