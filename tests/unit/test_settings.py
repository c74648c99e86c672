"""Settings: the SGMESH_* variables parsed once; every error names the variable and its value."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import SettingsError
from schemas.settings import ENVIRONMENT_NAMES, AddressMode, PortSpec, Settings, current_settings

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
        ("SGMESH_PORTS", "icmp:256"),
        ("SGMESH_PORTS", "icmp:8:300"),
        ("SGMESH_PORTS", "icmpv6:1:2:3"),
        ("SGMESH_PORTS", "all:80"),
        ("SGMESH_PORTS", "tcp"),
        ("SGMESH_PORTS", "sctp:9"),
        ("SGMESH_ADDRESS", "dual"),
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


@pytest.mark.parametrize(
    ("text", "protocol", "from_port", "to_port"),
    [
        ("icmp", "icmp", -1, -1),
        ("icmp:8", "icmp", 8, -1),
        ("icmp:3:4", "icmp", 3, 4),
        ("icmp:0:0", "icmp", 0, 0),
        ("icmpv6", "icmpv6", -1, -1),
        ("icmpv6:128", "icmpv6", 128, -1),
        ("icmpv6:1:4", "icmpv6", 1, 4),
        ("all", "all", -1, -1),
        ("udp:53", "udp", 53, 53),
        ("tcp:7000-7001", "tcp", 7000, 7001),
    ],
)
def test_given_any_protocols_text_when_parsed_then_ec2_numbers_and_the_same_text_back(
    text: str, protocol: str, from_port: int, to_port: int
) -> None:
    spec = PortSpec.parse(text)

    assert (spec.protocol, spec.from_port, spec.to_port) == (protocol, from_port, to_port)
    assert str(spec) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("icmp:256", "0-255"),
        ("icmp:8:256", "0-255"),
        ("all:1", "not a port spec"),
        ("icmp:", "not a port spec"),
        ("icmp-8", "not a port spec"),
        ("ICMP", "not a port spec"),
        ("udp:9-8", "runs backwards"),
    ],
)
def test_given_bad_spec_when_parsed_then_error_names_the_text_and_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as raised:
        PortSpec.parse(text)

    assert repr(text) in str(raised.value)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"protocol": "tcp"}, "tcp needs ports 0-65535, got -1--1"),
        ({"protocol": "udp", "from_port": -1, "to_port": 53}, "udp needs ports 0-65535"),
        ({"protocol": "all", "from_port": 0, "to_port": 65535}, "all traffic has no ports, got 0-65535"),
        ({"protocol": "icmp", "to_port": 4}, "ICMP code 4 needs a type"),
        ({"protocol": "icmpv6", "from_port": 300}, "ICMP type and code are 0-255, got 300:-1"),
    ],
    ids=["tcp-without-ports", "udp-any-port", "all-with-ports", "icmp-code-without-type", "icmp-type-300"],
)
def test_given_numbers_that_do_not_fit_the_protocol_when_built_then_refused(
    fields: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        PortSpec.model_validate(fields)


@given(
    protocol=st.sampled_from(["icmp", "icmpv6"]),
    icmp_type=st.integers(-1, 255),
    icmp_code=st.integers(-1, 255),
)
def test_any_valid_icmp_spec_round_trips_through_its_text(
    protocol: str, icmp_type: int, icmp_code: int
) -> None:
    if icmp_type == -1:
        icmp_code = -1
    spec = PortSpec.model_validate({"protocol": protocol, "from_port": icmp_type, "to_port": icmp_code})

    assert PortSpec.parse(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("public", AddressMode.PUBLIC),
        ("private", AddressMode.PRIVATE),
        ("ipv6", AddressMode.IPV6),
        ("dual-stack", AddressMode.DUAL_STACK),
    ],
)
def test_given_each_address_mode_when_read_then_parsed(text: str, mode: AddressMode) -> None:
    assert Settings.from_env(minimal_environment() | {"SGMESH_ADDRESS": text}).address is mode


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


def test_given_settings_when_written_as_environment_then_read_back_equal() -> None:
    every_setting = full_environment() | {
        "SGMESH_PORTS": "tcp:7000-7001,udp:53,icmp:3:4,icmpv6,all",
        "SGMESH_ADDRESS": "dual-stack",
        "SGMESH_TARGET": "prefix-list",
        "SGMESH_PREFIX_LIST_IDS": "pl-0123456789abcdef0,pl-0123456789abcdef1",
        "SGMESH_RULE_QUOTA": "200",
        "SGMESH_EVENT_RETENTION_DAYS": "9",
        "SGMESH_MAX_EVENT_AGE_SECONDS": "3600",
        "SGMESH_ADMISSION_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/sgmesh-prod-buffer",
    }
    for environment in (every_setting, minimal_environment()):
        settings = Settings.from_env(environment)

        written = settings.to_env()

        assert Settings.from_env(written) == settings
    # Unset settings are left out; every other variable the code reads is written, as an operator would.
    assert not {"SGMESH_TOPIC_ARN", "SGMESH_PORTS", "SGMESH_PREFIX_LIST_IDS"} & set(written)
    assert set(Settings.from_env(every_setting).to_env()) == set(ENVIRONMENT_NAMES.values())
    assert Settings.from_env(every_setting).to_env()["SGMESH_PORTS"] == every_setting["SGMESH_PORTS"]
