"""Every condition in the stack's policies is on a key that the requests of its actions carry.

IAM evaluates a condition on a key missing from the request as false, so such a statement silently
grants nothing: moto never notices (it evaluates no policy). The keys each action carries are read
from AWS's pages into tests/infra/condition_keys.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from infra.deploy.template import ARTIFACTS_TEMPLATE, load_template
from tests.infra.condition_keys import IN_EVERY_REQUEST, actions_matching, carried_keys, is_carried
from tests.infra.intrinsics import Resolver

ACCOUNT = "111111111111"
PEER = "222222222222"
# Every conditional statement switched on: peer accounts, prefix lists of both families, alarms.
PARAMETERS = {
    "ClusterName": "demo",
    "TopicArns": f"arn:aws:sns:eu-west-1:{ACCOUNT}:sgmesh-demo,arn:aws:sns:us-east-1:{PEER}:sgmesh-demo",
    "PeerAccountIds": PEER,
    "AutoScalingGroupNames": "a,b,c,d,e",
    "SecurityGroupIds": ",".join(f"sg-0123456789abcdef{n}" for n in range(5)),
    "Ports": "tcp:7000",
    "Target": "prefix-list",
    "AddressMode": "dual-stack",
    "AlarmTopicArn": f"arn:aws:sns:eu-west-1:{ACCOUNT}:ops",
}


def resolver(template: dict[str, Any], parameters: dict[str, str]) -> Resolver:
    return Resolver(
        template,
        parameters,
        {"AWS::Region": "eu-west-1", "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"},
        ref=lambda logical_id: f"ref-{logical_id}",
        getatt=lambda logical_id, attribute: f"arn:aws:test:eu-west-1:{ACCOUNT}:{logical_id}.{attribute}",
    )


def statements(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every policy document (key, topic, queue, bucket, role and managed policies)."""
    if isinstance(node, dict):
        if isinstance(node.get("Statement"), list):
            for statement in node["Statement"]:
                yield f"{where}/{statement.get('Sid', '?')}", statement
            return
        for key, value in node.items():
            yield from statements(value, f"{where}.{key}")
    elif isinstance(node, list):
        for item in node:
            yield from statements(item, where)


def calling_services(statement: dict[str, Any]) -> list[str | None]:
    """The AWS services a statement admits (sns for sns.af-south-1.amazonaws.com), or None for identities."""
    principal = statement.get("Principal")
    if not isinstance(principal, dict) or "Service" not in principal:
        return [None]
    services = principal["Service"]
    return [name.split(".", 1)[0] for name in ([services] if isinstance(services, str) else services)]


def missing_keys(where: str, statement: dict[str, Any]) -> list[str]:
    """Each (action, key) of the statement whose requests would not carry the key."""
    actions = statement["Action"]
    problems = []
    for operator, keys in statement.get("Condition", {}).items():
        if operator.endswith("IfExists"):
            continue
        for key in keys:
            if is_carried(key, IN_EVERY_REQUEST):
                continue
            for pattern in [actions] if isinstance(actions, str) else actions:
                known = actions_matching(pattern)
                if not known:
                    problems.append(f"{where}: {pattern} is not in tests/infra/condition_keys.py")
                for action in known:
                    for service in calling_services(statement):
                        if not is_carried(key, carried_keys(action, service)):
                            caller = service or "an identity"
                            problems.append(f"{where}: {action} by {caller} carries no {key}")
    return problems


def test_every_condition_is_on_a_key_its_actions_carry(transformed: dict[str, Any]) -> None:
    """GIVEN every policy of the stack resolved with every optional statement switched on, THEN no
    condition names a key that a request for one of its actions lacks.

    The peer statement of the topic policy once granted sns:Subscribe and sns:GetTopicAttributes under
    sns:Protocol, which only Subscribe requests carry: peers could never read the topic, so the
    cross-account deploy stopped. The key policy once limited EventBridge by aws:SourceArn, which AWS
    documents as unsupported for EventBridge and encrypted targets.
    """
    resolved = resolver(transformed, PARAMETERS)
    problems = []
    for logical_id in transformed["Resources"]:
        properties = resolved.resource(logical_id)
        for where, statement in statements(properties, logical_id):
            problems += missing_keys(where, statement)
    assert problems == []


def test_the_artifacts_bucket_policy_conditions_too() -> None:
    template = load_template(ARTIFACTS_TEMPLATE)
    resolved = resolver(template, {})
    problems = []
    for logical_id in template["Resources"]:
        for where, statement in statements(resolved.resource(logical_id), logical_id):
            problems += missing_keys(where, statement)
    assert problems == []


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        (
            {
                "Principal": {"AWS": [PEER]},
                "Action": ["sns:Subscribe", "sns:GetTopicAttributes"],
                "Condition": {"StringEquals": {"sns:Protocol": "sqs"}},
            },
            "t/s: sns:gettopicattributes by an identity carries no sns:Protocol",
        ),
        (
            {
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": ["kms:GenerateDataKey"],
                "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:events:*"}},
            },
            "t/s: kms:generatedatakey by events carries no aws:SourceArn",
        ),
    ],
)
def test_the_check_names_a_condition_that_can_never_hold(statement: dict[str, Any], problem: str) -> None:
    assert missing_keys("t/s", statement) == [problem]
