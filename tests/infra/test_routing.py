"""The subscriptions the template creates filter events as the product routes them (schemas.routing)."""

from __future__ import annotations

from typing import Any

from schemas.routing import FILTER_POLICY_SCOPE, subscription_filter_policy

REGION = "ap-southeast-2"


def resolved(value: Any) -> Any:
    """The policy as CloudFormation resolves it in a stack of REGION."""
    if value == {"Ref": "AWS::Region"}:
        return REGION
    if isinstance(value, dict):
        return {key: resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolved(item) for item in value]
    return value


def test_every_subscription_filters_on_message_attributes_with_the_products_policy(
    sam_template: dict[str, Any],
) -> None:
    subscriptions = [
        resource["Properties"]
        for resource in sam_template["Resources"].values()
        if resource["Type"] == "AWS::SNS::Subscription"
    ]
    assert len(subscriptions) == 10
    for subscription in subscriptions:
        assert subscription["FilterPolicyScope"] == FILTER_POLICY_SCOPE
        assert resolved(subscription["FilterPolicy"]) == subscription_filter_policy(REGION)


def test_the_policy_keeps_within_snss_limits() -> None:
    # At most 5 keys and 150 combinations of values (docs.aws.amazon.com/sns/latest/dg/
    # subscription-filter-policy-constraints.html); `$or` branches count each as a policy of its own.
    policy = subscription_filter_policy(REGION)
    (branches,) = policy.values()
    combinations = 0
    for branch in branches:
        assert len(branch) <= 5
        product = 1
        for values in branch.values():
            product *= len(values)
        combinations += product
    assert combinations <= 150
    # Acknowledgements name the sources' regions: a region receives only those of its own sources.
    assert branches[1] == {"type": ["sgmesh.acknowledgement"], "source_regions": [REGION]}
