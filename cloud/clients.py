"""boto3 clients with standard retries, built on first use and cached; the factory is injectable."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from cloud.throttling import ThrottleCounter

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

    from cloud.service_quotas import ServiceQuotasClient

# `standard` retries RequestLimitExceeded and throttling with backoff; the legacy mode does not.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=20,
)


class ClientFactory:
    """Builds one client per (service, region) on first use, from `session` (boto3's default one if
    None). The endpoint comes from boto3 itself (`AWS_ENDPOINT_URL` in Lambda) or from the session the
    caller hands over, so the product has no endpoint code path of its own."""

    def __init__(self, session: boto3.session.Session | None = None) -> None:
        self._session = session
        self._clients: dict[tuple[str, str], Any] = {}
        self.throttles = ThrottleCounter()

    def ec2(self, region: str) -> EC2Client:
        return self._client("ec2", region)  # type: ignore[no-any-return]

    def autoscaling(self, region: str) -> AutoScalingClient:
        return self._client("autoscaling", region)  # type: ignore[no-any-return]

    def dynamodb(self, region: str) -> DynamoDBClient:
        return self._client("dynamodb", region)  # type: ignore[no-any-return]

    def sns(self, region: str) -> SNSClient:
        return self._client("sns", region)  # type: ignore[no-any-return]

    def sqs(self, region: str) -> SQSClient:
        return self._client("sqs", region)  # type: ignore[no-any-return]

    def service_quotas(self, region: str) -> ServiceQuotasClient:
        return self._client("service-quotas", region)  # type: ignore[no-any-return]

    # The operator's tools (sgmesh doctor, teardown) read and repair the stacks' wiring with these.
    def events(self, region: str) -> EventBridgeClient:
        return self._client("events", region)  # type: ignore[no-any-return]

    def cloudformation(self, region: str) -> CloudFormationClient:
        return self._client("cloudformation", region)  # type: ignore[no-any-return]

    def s3(self, region: str) -> S3Client:
        return self._client("s3", region)  # type: ignore[no-any-return]

    def lambda_(self, region: str) -> LambdaClient:
        return self._client("lambda", region)  # type: ignore[no-any-return]

    def _client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self.build(service, region)
        return self._clients[key]

    def build(self, service: str, region: str) -> Any:
        """Make a new client; subclasses may wrap it (tests record every call's region here)."""
        if self._session is None:
            self._session = boto3.session.Session()
        client = self._session.client(service, region_name=region, config=CLIENT_CONFIG)  # type: ignore[call-overload]
        self.throttles.register(client)
        return client
