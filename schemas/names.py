"""Constrained names used in events and settings: AWS identifiers and the cluster name."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

# The cluster name is in every managed rule's description and names the stack (sgmesh-<cluster>), its
# topic, queues, functions, log groups, rules, hooks, key alias and prefix lists: 1-40 characters that
# all of those accept. No "_": CloudFormation stack names allow only letters, digits and hyphens
# (tests/infra/test_names.py pins each rule). The template's ClusterName parameter says the same.
ClusterName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$")]
AccountId = Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]
RegionName = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")]
GroupName = Annotated[str, StringConstraints(min_length=1, max_length=255)]
InstanceId = Annotated[str, StringConstraints(pattern=r"^i-[0-9a-f]{8,17}$")]
SecurityGroupId = Annotated[str, StringConstraints(pattern=r"^sg-[0-9a-f]{8,17}$")]
PrefixListId = Annotated[str, StringConstraints(pattern=r"^pl-[0-9a-f]{8,17}$")]
TopicArn = Annotated[
    str,
    StringConstraints(
        pattern=r"^arn:aws[a-z-]*:sns:[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$"
    ),
]
TableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{3,255}$")]
# https://sqs.<region>.amazonaws.com/<account>/<name>, or a local endpoint's http://127.0.0.1:<port>/...
QueueUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^/\s]+/[0-9]{12}/[A-Za-z0-9_-]{1,80}$")]
Version = Annotated[int, Field(ge=1)]


# The stack of each region's artifact bucket, which every cluster of the account shares.
ARTIFACTS_STACK = "sgmesh-artifacts"


def stack_name(cluster: str) -> str:
    """Each region's stack of the cluster (the deploy creates it; the doctor and the teardown read it)."""
    return f"sgmesh-{cluster}"


def queue_arn(queue_url: str, region: str, partition: str = "aws") -> str:
    """A (validated) queue URL's ARN: its last two path parts are the account and the name."""
    account, name = queue_url.rstrip("/").split("/")[-2:]
    return f"arn:{partition}:sqs:{region}:{account}:{name}"


def topic_region_and_account(topic_arn: str) -> tuple[str, str]:
    """The region and account a (validated) topic ARN belongs to."""
    _arn, _partition, _service, region, account, _name = topic_arn.split(":", 5)
    return region, account
