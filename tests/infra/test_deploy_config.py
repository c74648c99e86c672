"""The deploy file is typed as the functions' settings: the same refusals, the same values read back."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest

from infra.deploy.config import ClusterConfig
from infra.deploy.errors import DeployError
from infra.deploy.template import setting_parameters, stack_parameters
from schemas.errors import SettingsError
from schemas.settings import ENVIRONMENT_NAMES, Settings, current_settings
from tests.infra.intrinsics import Resolver

REGION = "eu-west-1"
ACCOUNT = "123456789012"
TOPICS = [f"arn:aws:sns:{region}:{ACCOUNT}:sgmesh-prod-1" for region in (REGION, "us-east-1", "ap-south-1")]
TABLE = "sgmesh-prod-1-Table-1A2B3C"
DEAD_LETTERS = [f"arn:aws:sqs:{topic.split(':')[3]}:{ACCOUNT}:dlq" for topic in TOPICS[1:]]
PREFIX_LISTS = {"PrefixListIpv4": "pl-0123456789abcdef0", "PrefixListIpv6": "pl-0123456789abcdef1"}
BUFFER = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/sgmesh-prod-1-LifecycleBuffer-1A2B3C"
FIELD_OF = {variable: field for field, variable in ENVIRONMENT_NAMES.items()}


def deploy_file(directory: Path, **keys: object) -> Path:
    """A deploy file with these top-level keys over a valid minimum (JSON scalars and arrays are TOML)."""
    top = {"cluster": "demo", "ports": "tcp:7000", "auto_scaling_groups": ["cassandra"], **keys}
    lines = [f"{key} = {json.dumps(value)}" for key, value in top.items()]
    path = directory / "sgmesh.toml"
    path.write_text("\n".join(lines) + '\n[regions.eu-west-1]\nsecurity_groups = ["sg-0123456789abcdef0"]\n')
    return path


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("address", "elastic"),
        ("target", "prefix-lists"),
        ("ports", "tcp:9000-80"),
        ("ports", "sctp:9"),
        ("rule_quota", 0),
        ("event_retention_days", 4000),
        ("max_event_age_seconds", 59),
        ("cluster", "my.cluster"),
        # SQS delays a message by 900 s at most (API_SendMessage, DelaySeconds): the timeout's timer
        ("admission_timeout_seconds", 901),
        ("admission_timeout_result", "WAIT"),
    ],
)
def test_a_bad_setting_in_the_deploy_file_is_refused_as_the_functions_refuse_it(
    tmp_path: Path, key: str, value: object
) -> None:
    # GIVEN the reason the functions give for this value in their environment variable
    variable = ENVIRONMENT_NAMES[key]
    environment = {"SGMESH_CLUSTER": "demo", "SGMESH_TABLE_NAME": "sgmesh-demo", "AWS_REGION": REGION}
    with pytest.raises(SettingsError) as in_environment:
        Settings.from_env({**environment, variable: str(value)})
    reason = str(in_environment.value).split(f"{variable}={str(value)!r}: ", 1)[1]

    # WHEN the deploy file holds the same value under the setting's key
    with pytest.raises(DeployError) as in_file:
        ClusterConfig.load(deploy_file(tmp_path, **{key: value}))

    # THEN the deploy stops at loading, naming the key and the value, with the same reason
    assert f"{key}={value!r}: {reason}" in str(in_file.value)


def test_every_bad_key_of_a_deploy_file_is_named_at_once(tmp_path: Path) -> None:
    path = deploy_file(tmp_path, address="dual", target="shards", peer_accounts=["12345"])
    path.write_text(path.read_text().replace("sg-0123456789abcdef0", "sg-xyz"))

    with pytest.raises(DeployError) as refused:
        ClusterConfig.load(path)

    message = str(refused.value)
    assert message.startswith(f"{path} has problems:")
    for expected in (
        "address='dual': Input should be 'public', 'private', 'ipv6' or 'dual-stack'",
        "target='shards': Input should be 'security-group', 'sharded' or 'prefix-list'",
        "peer_accounts[0]='12345': String should match pattern",
        "regions.eu-west-1.security_groups[0]='sg-xyz': String should match pattern",
    ):
        assert expected in message


def test_a_deploy_file_without_ports_says_so(tmp_path: Path) -> None:
    path = tmp_path / "sgmesh.toml"
    path.write_text('cluster = "demo"\n[regions.eu-west-1]\nsecurity_groups = ["sg-0123456789abcdef0"]\n')

    with pytest.raises(DeployError, match="ports is required but not set"):
        ClusterConfig.load(path)


@pytest.mark.parametrize(("target", "address"), [("prefix-list", "dual-stack"), ("sharded", "private")])
def test_each_function_reads_back_every_setting_the_deploy_file_gives_it(
    sam_template: dict[str, Any], transformed: dict[str, Any], target: str, address: str
) -> None:
    """GIVEN a deploy file with every setting away from its default, WHEN CloudFormation resolves each
    function's environment from the stack parameters the deploy derives, THEN the functions'
    `current_settings` reads back each setting as the deploy file meant it, and every setting reaches
    at least one function (Lambda itself sets AWS_REGION)."""
    config = ClusterConfig.model_validate(
        {
            "cluster": "prod-1",
            "ports": "tcp:7000-7001,udp:53,icmp:8,icmpv6,all",
            "address": address,
            "target": target,
            "rule_quota": 200,
            "event_retention_days": 9,
            "max_event_age_seconds": 3600,
            "admission_timeout_seconds": 300,
            "admission_timeout_result": "ABANDON",
            "auto_scaling_groups": ["cassandra-a", "cassandra-b"],
            "regions": {REGION: {"security_groups": ["sg-0123456789abcdef0", "sg-0123456789abcdef1"]}},
        }
    )
    resolver = Resolver(
        transformed,
        stack_parameters(sam_template, config, REGION, TOPICS, DEAD_LETTERS),
        {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"},
        ref={"Table": TABLE, "Topic": TOPICS[0], "LifecycleBuffer": BUFFER, **PREFIX_LISTS}.__getitem__,
        getatt=lambda logical_id, attribute: f"{logical_id}.{attribute}",
    )
    lists = {"prefix-list": tuple(PREFIX_LISTS.values()), "sharded": ()}[target]
    intended = config.settings(REGION, TOPICS).model_copy(
        update={"table_name": TABLE, "prefix_list_ids": lists, "admission_queue_url": BUFFER}
    )

    reached = {"region"}
    for function in transformed["Resources"].values():
        if function["Type"] != "AWS::Lambda::Function":
            continue
        environment = resolver.resolve(function["Properties"]["Environment"]["Variables"])
        read = current_settings({**environment, "AWS_REGION": REGION})
        given = {FIELD_OF[variable] for variable in environment}
        assert {field: getattr(read, field) for field in given} == {
            field: getattr(intended, field) for field in given
        }
        reached |= given
    assert reached == set(Settings.model_fields)


def test_the_template_constrains_and_defaults_each_setting_parameter_as_the_settings_model_does(
    sam_template: dict[str, Any],
) -> None:
    forwarded = setting_parameters(sam_template)
    # Every operator-chosen setting travels as a parameter; the table, topic, lists and lifecycle
    # buffer are the stack's own.
    assert {FIELD_OF[variable] for variable in forwarded} == set(Settings.model_fields) - {
        "region",
        "table_name",
        "topic_arn",
        "prefix_list_ids",
        "admission_queue_url",
    }
    for variable, parameter in forwarded.items():
        field = Settings.model_fields[FIELD_OF[variable]]
        spec = sam_template["Parameters"][parameter]
        if isinstance(field.annotation, type) and issubclass(field.annotation, StrEnum):
            assert spec["AllowedValues"] == [mode.value for mode in field.annotation], parameter
        bounds = {type(constraint).__name__: constraint for constraint in field.metadata}
        if "Ge" in bounds:
            assert (spec["MinValue"], spec["MaxValue"]) == (bounds["Ge"].ge, bounds["Le"].le), parameter
        if "Default" in spec:
            # As the environment spells the default (a bool as `false`, the way to_env writes it).
            default = str(field.default).lower() if isinstance(field.default, bool) else str(field.default)
            assert str(spec["Default"]) == default, parameter


def test_a_regions_observe_replaces_the_clusters_so_sgmesh_is_adopted_one_region_at_a_time(
    tmp_path: Path,
) -> None:
    # GIVEN a deploy file that observes everywhere but in a region that says otherwise
    path = deploy_file(tmp_path, observe=True)
    path.write_text(
        path.read_text()
        + '\n[regions.us-east-1]\nsecurity_groups = ["sg-0123456789abcdef1"]\nobserve = false\n'
    )
    config = ClusterConfig.load(path)
    # WHEN each region's function settings are made from it
    # THEN the region's own value wins, and the function reads it back from its environment
    observing = {region: config.settings(region, TOPICS).observe for region in ("eu-west-1", "us-east-1")}
    assert observing == {"eu-west-1": True, "us-east-1": False}
    environment = config.settings("eu-west-1", TOPICS).to_env()
    assert environment["SGMESH_OBSERVE"] == "true"
    assert Settings.from_env({**environment, "SGMESH_TABLE_NAME": TABLE}).observe


@pytest.mark.parametrize(
    ("keys", "silence", "headroom"),
    [
        ({}, 3 * 15 * 60, 6),
        ({"trueup_schedule": "rate(1 hour)", "rule_quota": 100}, 3 * 3600, 10),
        (
            {"trueup_schedule": "rate(5 minutes)", "rule_quota": 61, "rule_headroom_alarm_percent": 20},
            900,
            13,
        ),
        ({"trueup_schedule": "cron(0/10 * * * ? *)", "source_silence_alarm_seconds": 1800}, 1800, 6),
    ],
)
def test_the_alarm_thresholds_follow_the_true_up_schedule_and_the_rule_quota(
    tmp_path: Path, keys: dict[str, object], silence: int, headroom: int
) -> None:
    # GIVEN a deploy file's schedule, quota and headroom share, WHEN its stack options are made,
    # THEN the source-silence alarm waits three true-up periods, and the headroom alarm is the share
    options = ClusterConfig.load(deploy_file(tmp_path, **keys)).stack_options(REGION)
    assert (options["SourceSilenceAlarmSeconds"], options["RuleHeadroomAlarmThreshold"]) == (
        str(silence),
        str(headroom),
    )


def test_a_cron_schedule_without_a_silence_threshold_is_refused_naming_both_keys(tmp_path: Path) -> None:
    config = ClusterConfig.load(deploy_file(tmp_path, trueup_schedule="cron(0/10 * * * ? *)"))
    with pytest.raises(DeployError, match=r"trueup_schedule=.*source_silence_alarm_seconds"):
        config.stack_options(REGION)
