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
# Who reads what (docs/configuration.md, Settings); Lambda itself sets AWS_REGION.
COMMON = {"SGMESH_CLUSTER", "SGMESH_TABLE_NAME", "SGMESH_ADDRESS"}
PRODUCER = COMMON | {"SGMESH_TOPIC_ARN", "SGMESH_ASG_NAMES"}
# The admission barrier: the lifecycle function holds launches, the consumer asks it to settle them.
BARRIER = {
    # The regions a launch waits for: without them the barrier would wait for none.
    "SGMESH_PEER_TOPIC_ARNS",
    "SGMESH_ADMISSION_TIMEOUT_SECONDS",
    "SGMESH_ADMISSION_TIMEOUT_RESULT",
    "SGMESH_ADMISSION_QUEUE_URL",
}
CONSUMER = (
    BARRIER
    | COMMON
    | {
        # Its own topic, where it asks for a resync and answers one.
        "SGMESH_TOPIC_ARN",
        "SGMESH_SECURITY_GROUP_IDS",
        "SGMESH_PORTS",
        "SGMESH_PEER_TOPIC_ARNS",
        "SGMESH_RULE_QUOTA",
        "SGMESH_EVENT_RETENTION_DAYS",
        "SGMESH_MAX_EVENT_AGE_SECONDS",
        "SGMESH_TARGET",
        "SGMESH_PREFIX_LIST_IDS",
        "SGMESH_OBSERVE",
    }
)
NEEDS = {"LifecycleFunction": PRODUCER | BARRIER, "TrueupFunction": PRODUCER, "ConsumerFunction": CONSUMER}
BUFFER = f"https://sqs.{REGION}.amazonaws.com/123456789012/sgmesh-demo-LifecycleBuffer-1A2B3C"
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
        ref={"Table": "sgmesh-demo-Table-1A2B3C", "Topic": TOPIC, "LifecycleBuffer": BUFFER}.__getitem__,
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


PREFIX_LIST_IDS = {"PrefixListIpv4": "pl-0123456789abcdef0", "PrefixListIpv6": "pl-0123456789abcdef1"}


def prefix_list_arn(logical_id: str) -> str:
    return f"arn:aws:ec2:{REGION}:123456789012:prefix-list/{PREFIX_LIST_IDS[logical_id]}"


@pytest.mark.parametrize(
    ("target", "address", "lists"),
    [
        ("prefix-list", "public", ["PrefixListIpv4"]),
        ("prefix-list", "private", ["PrefixListIpv4"]),
        ("prefix-list", "ipv6", ["PrefixListIpv6"]),
        ("prefix-list", "dual-stack", ["PrefixListIpv4", "PrefixListIpv6"]),
        ("security-group", "dual-stack", []),
        ("sharded", "public", []),
    ],
)
def test_the_prefix_list_target_gets_one_list_per_address_family_and_may_write_only_those(
    transformed: dict[str, Any], target: str, address: str, lists: list[str]
) -> None:
    """GIVEN a target and an address mode, WHEN CloudFormation resolves the template, THEN the stack
    creates a prefix list per address family the rules admit (with the prefix-list target only), the
    consumer gets their ids, IPv4 first, and its role may write those lists and no other."""
    resolver = Resolver(
        transformed,
        {**PARAMETERS, "Target": target, "AddressMode": address, "PrefixListMaxEntries": "250"},
        {"AWS::Region": REGION, "AWS::AccountId": "123456789012", "AWS::Partition": "aws"},
        ref={
            "Table": "sgmesh-demo-Table-1A2B3C",
            "Topic": TOPIC,
            "LifecycleBuffer": BUFFER,
            **PREFIX_LIST_IDS,
        }.__getitem__,
        getatt=lambda logical_id, attribute: (
            prefix_list_arn(logical_id) if logical_id in PREFIX_LIST_IDS else f"{logical_id}.{attribute}"
        ),
    )
    created = {name: resolver.resource(name) for name in PREFIX_LIST_IDS}
    assert [name for name, properties in created.items() if properties is not None] == lists
    for name in lists:
        family = "IPv4" if name == "PrefixListIpv4" else "IPv6"
        assert created[name] == {
            "PrefixListName": f"sgmesh-demo-{family.lower()}",
            "AddressFamily": family,
            "MaxEntries": "250",
        }
    environment = resolver.resolve(functions(transformed)["ConsumerFunction"]["Environment"]["Variables"])
    assert environment["SGMESH_TARGET"] == target
    assert environment["SGMESH_PREFIX_LIST_IDS"] == ",".join(PREFIX_LIST_IDS[name] for name in lists)
    settings = Settings.from_env({**environment, "AWS_REGION": REGION})
    assert settings.prefix_list_ids == tuple(PREFIX_LIST_IDS[name] for name in lists)
    role = resolver.resource("ConsumerRole")
    assert role is not None
    statements = {s["Sid"]: s for s in role["Policies"][0]["PolicyDocument"]["Statement"]}
    # Every consumer reads list sizes (a reference of the operator's weighs the list's MaxEntries);
    # only the prefix-list target may write, and only its own lists.
    assert statements["DescribePrefixLists"]["Action"] == "ec2:DescribeManagedPrefixLists"
    if lists:
        assert statements["WriteOwnPrefixListsOnly"]["Resource"] == [prefix_list_arn(name) for name in lists]
    else:
        assert "WriteOwnPrefixListsOnly" not in statements
