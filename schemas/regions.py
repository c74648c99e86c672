"""Opt-in regions as SNS sees them: the service principal a queue must admit, and what SNS cannot carry."""

from __future__ import annotations

from collections.abc import Iterable

# AWS, "Sending Amazon SNS messages to an Amazon SQS queue or AWS Lambda function in a different
# Region" (https://docs.aws.amazon.com/sns/latest/dg/sns-cross-region-delivery.html#opt-in-regions):
# its table of opt-in regions, and its rule that "opt-in regions include any regions launched after
# March 20, 2019" (ca-west-1, ap-southeast-5, ap-southeast-7, mx-central-1 and ap-east-2 since).
# Deliveries from one of these need the principal sns.<region>.amazonaws.com in the queue's policy;
# SNS does not forward messages from one opt-in region to another.
SNS_OPT_IN_REGIONS = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-northeast-3",
        "ap-south-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-7",
        "ca-west-1",
        "eu-central-2",
        "eu-south-1",
        "eu-south-2",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
    }
)
GLOBAL_SNS_PRINCIPAL = "sns.amazonaws.com"


def sns_principals(queue_region: str, topic_regions: Iterable[str]) -> tuple[str, ...]:
    """The SNS principals a queue in this region admits for deliveries from topics in these regions.

    The global principal always (deliveries between regions enabled by default, and within a region);
    the regional principal of every opt-in region involved: the topic's, as AWS's page requires for
    deliveries from an opt-in region, and the queue's own, for deliveries into an opt-in region, which
    the page supports without naming the principal.
    """
    opt_in = sorted({queue_region, *topic_regions} & SNS_OPT_IN_REGIONS)
    return (GLOBAL_SNS_PRINCIPAL, *(f"sns.{region}.amazonaws.com" for region in opt_in))


def unsupported_deliveries(
    queue_regions: Iterable[str], topic_regions: Iterable[str]
) -> list[tuple[str, str]]:
    """(topic region, queue region) pairs SNS cannot deliver: from one opt-in region to another."""
    return sorted(
        (topic_region, queue_region)
        for queue_region in set(queue_regions) & SNS_OPT_IN_REGIONS
        for topic_region in set(topic_regions) & SNS_OPT_IN_REGIONS
        if topic_region != queue_region
    )
