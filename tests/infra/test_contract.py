"""The contract between the template and the code: the handlers it runs and the settings it sets."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from cloud.clients import ClientFactory
from consumers import bootstrap as consumer_bootstrap
from producers import bootstrap as producer_bootstrap
from schemas.settings import ENVIRONMENT_NAMES, Settings
from tests.infra.intrinsics import Resolver

REGION = "eu-west-1"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:sgmesh-demo"
HANDLERS = {
    "LifecycleFunction": "producers.lifecycle.handler",
    "TrueupFunction": "producers.trueup.handler",
    "ConsumerFunction": "consumers.apply.handler",
}
# Who reads what (DESIGN.md section 4); Lambda itself sets AWS_REGION.
COMMON = {"SGMESH_CLUSTER", "SGMESH_TABLE_NAME", "SGMESH_ADDRESS"}
PRODUCER = COMMON | {"SGMESH_TOPIC_ARN", "SGMESH_ASG_NAMES"}
CONSUMER = COMMON | {
    "SGMESH_SECURITY_GROUP_IDS",
    "SGMESH_PORTS",
    "SGMESH_PEER_TOPIC_ARNS",
    "SGMESH_RULE_QUOTA",
    "SGMESH_EVENT_RETENTION_DAYS",
}
NEEDS = {"LifecycleFunction": PRODUCER, "TrueupFunction": PRODUCER, "ConsumerFunction": CONSUMER}
PARAMETERS = {
    "ClusterName": "demo",
    "TopicArns": f"{TOPIC},arn:aws:sns:us-east-1:123456789012:sgmesh-demo",
    "AutoScalingGroupNames": "cassandra-a,cassandra-b",
    "SecurityGroupIds": "sg-0123456789abcdef0,sg-0123456789abcdef1",
    "Ports": "tcp:7000-7001,udp:7002",
}


def functions(transformed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in transformed["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def test_the_template_runs_the_three_handlers(transformed: dict[str, Any]) -> None:
    assert {name: function["Handler"] for name, function in functions(transformed).items()} == HANDLERS


@pytest.mark.parametrize("path", sorted(HANDLERS.values()))
def test_every_handler_path_imports(path: str) -> None:
    module, attribute = path.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), attribute))


def test_every_setting_the_code_reads_is_set_on_the_functions_that_need_it(
    transformed: dict[str, Any],
) -> None:
    read_by_code = {name for name in ENVIRONMENT_NAMES.values() if name.startswith("SGMESH_")}
    set_by_template = {
        name: set(function["Environment"]["Variables"]) for name, function in functions(transformed).items()
    }
    assert set_by_template == NEEDS
    # A setting added to the code fails here until the template sets it (or the code stops reading it).
    assert set().union(*NEEDS.values()) == read_by_code


def test_the_settings_the_template_sets_validate_and_build_each_side(transformed: dict[str, Any]) -> None:
    """GIVEN each function's environment as CloudFormation would resolve it, THEN the settings model
    accepts it and each side's service (which checks what it requires) can be built from it."""
    resolver = Resolver(
        transformed,
        PARAMETERS,
        {"AWS::Region": REGION, "AWS::AccountId": "123456789012", "AWS::Partition": "aws"},
        ref={"Table": "sgmesh-demo-Table-1A2B3C", "Topic": TOPIC}.__getitem__,
        getatt=lambda logical_id, attribute: f"{logical_id}.{attribute}",
    )
    built = {}
    for name, function in functions(transformed).items():
        environment = resolver.resolve(function["Environment"]["Variables"])
        settings = Settings.from_env({**environment, "AWS_REGION": REGION})
        side = consumer_bootstrap if function["Handler"].startswith("consumers.") else producer_bootstrap
        built[name] = type(side.build(settings, ClientFactory())).__name__
        assert settings.cluster == "demo"
    assert built == {
        "LifecycleFunction": "SnapshotService",
        "TrueupFunction": "SnapshotService",
        "ConsumerFunction": "ApplyService",
    }
