"""Settings: the SGMESH_* variables parsed once; every error names the variable and its value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import SettingsError
from schemas.settings import AddressMode, PortSpec, Settings, current_settings

PEERS = (
    "arn:aws:sns:eu-west-1:111111111111:sgmesh-prod,"
    " arn:aws:sns:us-east-1:222222222222:sgmesh-prod ,arn:aws:sns:ap-south-1:111111111111:sgmesh-prod"
)


def full_environment() -> dict[str, str]:
    return {
        "SGMESH_CLUSTER": "prod",
        "SGMESH_TABLE_NAME": "sgmesh-prod",
        "SGMESH_TOPIC_ARN": "arn:aws:sns:eu-west-1:111111111111:sgmesh-prod",
        "SGMESH_ASG_NAMES": "cassandra-a, cassandra-b,",
        "SGMESH_SECURITY_GROUP_IDS": "sg-0123456789abcdef0,sg-0fedcba9876543210",
        "SGMESH_PORTS": "tcp:7000-7001,udp:7002,tcp:9042",
        "SGMESH_PEER_TOPIC_ARNS": PEERS,
        "SGMESH_ADDRESS": "private",
        "AWS_REGION": "eu-west-1",
    }


def minimal_environment() -> dict[str, str]:
    return {"SGMESH_CLUSTER": "prod", "SGMESH_TABLE_NAME": "sgmesh-prod", "AWS_REGION": "eu-west-1"}


def test_given_every_design_variable_when_read_then_lists_and_port_specs_are_parsed() -> None:
    settings = Settings.from_env(full_environment())

    assert settings.cluster == "prod"
    assert settings.table_name == "sgmesh-prod"
    assert settings.region == "eu-west-1"
    assert settings.topic_arn == "arn:aws:sns:eu-west-1:111111111111:sgmesh-prod"
    assert settings.asg_names == ("cassandra-a", "cassandra-b")
    assert settings.security_group_ids == ("sg-0123456789abcdef0", "sg-0fedcba9876543210")
    assert settings.ports == (
        PortSpec(protocol="tcp", from_port=7000, to_port=7001),
        PortSpec(protocol="udp", from_port=7002, to_port=7002),
        PortSpec(protocol="tcp", from_port=9042, to_port=9042),
    )
    assert settings.peer_topic_arns == (
        "arn:aws:sns:eu-west-1:111111111111:sgmesh-prod",
        "arn:aws:sns:us-east-1:222222222222:sgmesh-prod",
        "arn:aws:sns:ap-south-1:111111111111:sgmesh-prod",
    )
    assert settings.address is AddressMode.PRIVATE


def test_given_only_required_variables_when_read_then_defaults_apply() -> None:
    settings = Settings.from_env(minimal_environment())

    assert settings.address is AddressMode.PUBLIC
    assert settings.rule_quota == 60
    assert settings.topic_arn is None
    assert settings.asg_names == settings.security_group_ids == settings.peer_topic_arns == ()
    assert settings.ports == ()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SGMESH_PORTS", "tcp:abc"),
        ("SGMESH_PORTS", "tcp:9000-8000"),
        ("SGMESH_PORTS", "icmp:1"),
        ("SGMESH_PORTS", "tcp:70000"),
        ("SGMESH_PORTS", "9042"),
        ("SGMESH_ADDRESS", "elastic"),
        ("SGMESH_CLUSTER", "prod eu"),
        ("SGMESH_TABLE_NAME", "x"),
        ("SGMESH_TOPIC_ARN", "arn:aws:sqs:eu-west-1:111111111111:sgmesh-prod"),
        ("SGMESH_SECURITY_GROUP_IDS", "sg-xyz"),
        ("SGMESH_PEER_TOPIC_ARNS", "not-an-arn"),
        ("SGMESH_RULE_QUOTA", "lots"),
        ("AWS_REGION", "Europe"),
    ],
)
def test_given_malformed_variable_when_read_then_error_names_variable_and_value(
    variable: str, value: str
) -> None:
    environment = full_environment() | {variable: value}

    with pytest.raises(SettingsError) as raised:
        Settings.from_env(environment)

    assert variable in str(raised.value)
    assert value in str(raised.value)


def test_given_one_bad_item_in_a_list_when_read_then_error_names_that_item() -> None:
    environment = full_environment() | {"SGMESH_PORTS": "tcp:7000-7001,tcp:abc"}

    with pytest.raises(SettingsError, match=r"SGMESH_PORTS.*'tcp:abc'"):
        Settings.from_env(environment)


@pytest.mark.parametrize("missing", ["SGMESH_CLUSTER", "SGMESH_TABLE_NAME"])
def test_given_required_variable_missing_when_read_then_error_names_it(missing: str) -> None:
    environment = full_environment()
    del environment[missing]

    with pytest.raises(SettingsError, match=rf"{missing}.*required"):
        Settings.from_env(environment)


def test_given_blank_required_variable_when_read_then_treated_as_missing() -> None:
    environment = full_environment() | {"SGMESH_CLUSTER": "   "}

    with pytest.raises(SettingsError, match=r"SGMESH_CLUSTER.*required"):
        Settings.from_env(environment)


def test_given_settings_without_producer_variables_when_required_then_error_names_each() -> None:
    settings = Settings.from_env(minimal_environment())

    with pytest.raises(SettingsError) as raised:
        settings.require("topic_arn", "asg_names", "cluster")

    message = str(raised.value)
    assert "SGMESH_TOPIC_ARN" in message
    assert "SGMESH_ASG_NAMES" in message
    assert "SGMESH_CLUSTER" not in message


def test_given_complete_settings_when_required_then_returns_them() -> None:
    settings = Settings.from_env(full_environment())

    assert (
        settings.require("topic_arn", "asg_names", "security_group_ids", "ports", "peer_topic_arns")
        is settings
    )


def test_given_only_aws_default_region_when_read_then_it_is_the_region() -> None:
    environment = minimal_environment()
    del environment["AWS_REGION"]
    environment["AWS_DEFAULT_REGION"] = "us-east-2"

    assert Settings.from_env(environment).region == "us-east-2"


def test_given_both_region_variables_when_read_then_aws_region_wins() -> None:
    environment = minimal_environment() | {"AWS_DEFAULT_REGION": "us-east-2"}

    assert Settings.from_env(environment).region == "eu-west-1"


def test_given_no_region_at_all_when_read_then_error_names_aws_region() -> None:
    environment = minimal_environment()
    del environment["AWS_REGION"]

    with pytest.raises(SettingsError, match="AWS_REGION"):
        Settings.from_env(environment)


def test_given_settings_when_changed_then_assignment_is_refused() -> None:
    settings = Settings.from_env(full_environment())

    with pytest.raises(ValueError, match="frozen"):
        settings.cluster = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tcp:7000-7001", PortSpec(protocol="tcp", from_port=7000, to_port=7001)),
        ("udp:53", PortSpec(protocol="udp", from_port=53, to_port=53)),
        (" tcp:0-65535 ", PortSpec(protocol="tcp", from_port=0, to_port=65535)),
    ],
)
def test_given_port_spec_text_when_parsed_then_protocol_and_range(text: str, expected: PortSpec) -> None:
    assert PortSpec.parse(text) == expected


@given(
    protocol=st.sampled_from(["tcp", "udp"]),
    ports=st.lists(st.integers(0, 65535), min_size=2, max_size=2).map(sorted),
)
def test_any_valid_port_spec_round_trips_through_its_text(protocol: str, ports: list[int]) -> None:
    spec = PortSpec.parse(f"{protocol}:{ports[0]}-{ports[1]}")

    assert spec == PortSpec(protocol=protocol, from_port=ports[0], to_port=ports[1])  # type: ignore[arg-type]
    assert PortSpec.parse(str(spec)) == spec
    assert str(PortSpec.parse(str(spec))) == str(spec)


def test_given_same_environment_when_asked_twice_then_same_settings_object() -> None:
    first = current_settings(full_environment() | {"PATH": "/usr/bin"})

    again = current_settings(full_environment() | {"PATH": "/somewhere/else"})

    assert again is first


def test_given_a_changed_value_when_asked_then_new_settings_reflect_it() -> None:
    first = current_settings(full_environment())

    changed = current_settings(full_environment() | {"SGMESH_PORTS": "tcp:9042"})

    assert changed is not first
    assert changed.ports == (PortSpec(protocol="tcp", from_port=9042, to_port=9042),)
    assert current_settings(full_environment()) is first


def test_given_bad_environment_when_asked_then_settings_error_each_time() -> None:
    environment = full_environment() | {"SGMESH_ADDRESS": "elastic"}

    for _ in range(2):
        with pytest.raises(SettingsError, match="SGMESH_ADDRESS"):
            current_settings(environment)
