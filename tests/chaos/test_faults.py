"""The fault harness itself: injected errors look real to botocore (parsed, retried, counted)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

from sgmesh.local.clients import ExtendedClientFactory
from sgmesh.local.clock import SimClock
from sgmesh.local.embedded import EndpointSession
from tests.chaos.faults import FaultKind, Faults, HandlerCrash

REGION = "us-east-1"
ATTEMPTS = 6  # cloud/clients.py: standard mode, max_attempts 5 retries after the first attempt

# One read per wire protocol the product uses: ec2, json (DynamoDB), query (SNS, Auto Scaling).
CALLS: dict[str, Callable[[ExtendedClientFactory], Any]] = {
    "ec2:DescribeSecurityGroups": lambda clients: clients.ec2(REGION).describe_security_groups(),
    "dynamodb:ListTables": lambda clients: clients.dynamodb(REGION).list_tables(),
    "sns:ListTopics": lambda clients: clients.sns(REGION).list_topics(),
    "auto-scaling:DescribeAutoScalingGroups": lambda clients: clients.autoscaling(
        REGION
    ).describe_auto_scaling_groups(),
}
THROTTLE_CODES = {
    "ec2:DescribeSecurityGroups": "RequestLimitExceeded",
    "dynamodb:ListTables": "ThrottlingException",
    "sns:ListTopics": "Throttling",
    "auto-scaling:DescribeAutoScalingGroups": "Throttling",
}


def harness(endpoint: str) -> tuple[SimClock, Faults, ExtendedClientFactory]:
    clock = SimClock()
    faults = Faults(clock, seed=1)
    return clock, faults, ExtendedClientFactory(EndpointSession(endpoint), faults)


@pytest.mark.parametrize("operation", sorted(CALLS))
def test_throttles_within_the_retry_budget_are_retried_by_botocore_and_succeed(
    aws: str, operation: str
) -> None:
    _clock, faults, clients = harness(aws)
    faults.inject(FaultKind.THROTTLE, region=REGION, operation=operation, times=ATTEMPTS - 1)

    with faults.instant_backoff():
        CALLS[operation](clients)

    assert (faults.calls[operation], faults.attempts[operation], faults.retries) == (
        1,
        ATTEMPTS,
        ATTEMPTS - 1,
    )
    assert faults.backoff_seconds > 0


@pytest.mark.parametrize("operation", sorted(CALLS))
def test_throttles_beyond_the_retry_budget_surface_as_the_services_own_error(
    aws: str, operation: str
) -> None:
    _clock, faults, clients = harness(aws)
    faults.inject(FaultKind.THROTTLE, region=REGION, operation=operation, times=ATTEMPTS)

    with faults.instant_backoff(), pytest.raises(ClientError) as raised:
        CALLS[operation](clients)

    assert raised.value.response["Error"]["Code"] == THROTTLE_CODES[operation]
    assert faults.attempts[operation] == ATTEMPTS


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (FaultKind.SERVER_ERROR, ClientError),
        (FaultKind.READ_TIMEOUT, ReadTimeoutError),
        (FaultKind.CONNECT_TIMEOUT, ConnectTimeoutError),
    ],
)
def test_5xx_and_timeouts_are_retried_then_raised(aws: str, kind: FaultKind, error: type[Exception]) -> None:
    _clock, faults, clients = harness(aws)
    faults.inject(kind, region=REGION, operation="ec2:DescribeSecurityGroups", times=ATTEMPTS)

    with faults.instant_backoff(), pytest.raises(error):
        clients.ec2(REGION).describe_security_groups()

    assert faults.injected[kind.value] == ATTEMPTS


def test_a_region_is_unreachable_only_during_its_outage_in_simulated_time(aws: str) -> None:
    clock, faults, clients = harness(aws)
    faults.outage(REGION, start=10, end=20)
    clients.ec2(REGION).describe_security_groups()

    clock.advance_to(10)
    with faults.instant_backoff(), pytest.raises(ConnectTimeoutError):
        clients.ec2(REGION).describe_security_groups()
    clients.ec2("us-west-2").describe_security_groups()

    clock.advance_to(20)
    clients.ec2(REGION).describe_security_groups()


def test_a_crash_stops_the_invocation_before_its_nth_call_and_only_that_invocation(aws: str) -> None:
    _clock, faults, clients = harness(aws)
    faults.crash(REGION, "apply", at_call=1)
    ec2 = clients.ec2(REGION)

    with faults.invocation(REGION, "apply"):
        ec2.describe_security_groups()
        with pytest.raises(HandlerCrash):
            ec2.describe_security_groups()
    with faults.invocation(REGION, "apply"):
        ec2.describe_security_groups()
        ec2.describe_security_groups()

    assert faults.calls["ec2:DescribeSecurityGroups"] == 3, "the crashed call was never made"
    assert faults.attempts["ec2:DescribeSecurityGroups"] == 3
