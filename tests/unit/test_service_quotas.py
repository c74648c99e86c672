"""The rule budget: Service Quotas' applied quota where it answers, the setting otherwise, read once."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aws_lambda_powertools.logging import Logger
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from cloud.clients import ClientFactory
from cloud.service_quotas import RULES_PER_GROUP, SERVICE_CODE, RuleBudgetReader
from schemas.quota import Family, QuotaOrigin, RuleBudget, rule_budget
from sgmesh.local.stack import StackSpec
from sgmesh.operator import Operator
from tests.support.mesh import TWO_REGIONS, Mesh, Provisioner

EAST = TWO_REGIONS[0]

EXPECTED = {"ServiceCode": "vpc", "QuotaCode": "L-0EA8095F"}


@pytest.fixture
def logger() -> Logger:
    return Logger(service="test-service-quotas", logger_handler=logging.StreamHandler())


def quotas_client(region: str = "eu-west-1") -> Any:
    return ClientFactory().service_quotas(region)


def counting(client: Any) -> list[dict[str, Any]]:
    """Every GetServiceQuota request the client sends, with its parameters."""
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.service-quotas.GetServiceQuota", lambda params, **_: sent.append(dict(params))
    )
    return sent


@given(setting=st.integers(1, 1000), service_quota=st.none() | st.integers(1, 10_000))
def test_the_budget_is_never_more_than_either_reading(setting: int, service_quota: int | None) -> None:
    budget = rule_budget(setting, service_quota)
    assert budget.quota <= setting
    if service_quota is None:
        assert (budget.quota, budget.origin) == (setting, QuotaOrigin.SETTING)
    else:
        assert budget.quota == min(setting, service_quota)
        assert budget.origin is (
            QuotaOrigin.SERVICE_QUOTAS if service_quota <= setting else QuotaOrigin.SETTING
        )


def test_given_service_quotas_answers_then_its_applied_quota_is_the_budget_and_read_once(
    aws: str, logger: Logger
) -> None:
    # GIVEN moto's Service Quotas (the account's default: 60) and a setting above it
    client = quotas_client()
    sent = counting(client)
    reader = RuleBudgetReader(client, setting=200, logger=logger)
    # WHEN the budget is asked for three times
    budgets = {reader() for _ in range(3)}
    # THEN the applied quota bounds it, it names where it came from, and only one call was made
    assert budgets == {RuleBudget(60, QuotaOrigin.SERVICE_QUOTAS, setting=200, service_quota=60)}
    assert sent == [EXPECTED]
    assert (SERVICE_CODE, RULES_PER_GROUP) == ("vpc", "L-0EA8095F")


def test_given_a_setting_under_the_applied_quota_then_the_setting_is_the_budget(
    aws: str, logger: Logger
) -> None:
    reader = RuleBudgetReader(quotas_client(), setting=10, logger=logger)
    assert reader() == RuleBudget(10, QuotaOrigin.SETTING, setting=10, service_quota=60)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("AccessDeniedException", "not authorized to perform: servicequotas:GetServiceQuota"),
        ("NoSuchResourceException", "The request failed because the specified service does not exist."),
        ("TooManyRequestsException", "Rate exceeded"),
    ],
)
def test_given_service_quotas_refuses_then_the_setting_is_the_budget_and_why_is_logged_once(
    code: str, message: str, logger: Logger, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN Service Quotas answering with an error (a stubbed client: moto grants everything)
    client = quotas_client()
    with Stubber(client) as stub:
        stub.add_client_error("get_service_quota", code, message, expected_params=EXPECTED)
        reader = RuleBudgetReader(client, setting=60, logger=logger)
        # WHEN the budget is asked for twice
        with caplog.at_level(logging.WARNING):
            first, second = reader(), reader()
        stub.assert_no_pending_responses()
    # THEN the setting is the budget, from one call, and the reason is logged once
    assert first is second
    assert (first.quota, first.origin, first.service_quota) == (60, QuotaOrigin.SETTING, None)
    assert first.unreadable is not None
    assert code in first.unreadable
    warnings = [record for record in caplog.records if "Service Quotas" in record.getMessage()]
    assert len(warnings) == 1
    assert code in str(warnings[0].__dict__.get("reason"))


def test_given_an_unreachable_endpoint_then_the_setting_is_the_budget(
    logger: Logger, caplog: pytest.LogCaptureFixture
) -> None:
    client = quotas_client()

    def unreachable(request: Any, **_: Any) -> None:
        raise EndpointConnectionError(endpoint_url=request.url)

    client.meta.events.register("before-send.service-quotas.GetServiceQuota", unreachable)
    reader = RuleBudgetReader(client, setting=45, logger=logger)
    with caplog.at_level(logging.WARNING):
        budget = reader()
    assert (budget.quota, budget.origin, budget.service_quota) == (45, QuotaOrigin.SETTING, None)
    (warning,) = [record for record in caplog.records if "Service Quotas" in record.getMessage()]
    assert "Could not connect" in str(warning.__dict__.get("reason"))


def test_given_a_quota_without_a_value_then_the_setting_is_the_budget(logger: Logger) -> None:
    client = quotas_client()
    with Stubber(client) as stub:
        stub.add_response(
            "get_service_quota",
            {
                "Quota": {
                    "QuotaCode": RULES_PER_GROUP,
                    "ErrorReason": {"ErrorCode": "SERVICE_QUOTA_NOT_AVAILABLE_ERROR", "ErrorMessage": "n/a"},
                }
            },
            EXPECTED,
        )
        budget = RuleBudgetReader(client, setting=60, logger=logger)()
    assert (budget.quota, budget.origin) == (60, QuotaOrigin.SETTING)
    assert budget.unreadable is not None
    assert "SERVICE_QUOTA_NOT_AVAILABLE_ERROR" in budget.unreadable


def test_given_a_setting_above_the_account_quota_then_the_consumer_holds_back_what_passes_the_account_quota(
    aws: str,
    provisioned: Provisioner,
) -> None:
    # GIVEN SGMESH_RULE_QUOTA=200 but the account's applied quota (moto's Service Quotas) is 60, and
    # 4 members x 16 ports: 64 rules per group, 65 with the operator's own rule
    ports = ",".join(f"tcp:{7000 + n}" for n in range(16))
    mesh = provisioned(Mesh(aws, TWO_REGIONS, StackSpec(ports=ports, rule_quota=200)))
    for region in mesh.regions:
        mesh.trueup(region)
    first = mesh.calls.mark()
    # WHEN the consumer gets the snapshots, twice (a retry, in the same warm process)
    messages = mesh.drain(EAST)
    refused = [mesh.deliver(EAST, messages) for _ in range(2)]
    # THEN against the account's 60, three members go in whole (1 + 3 x 16 = 49 rules) and the fourth
    # waits: each delivery fails for a retry, the second writes nothing new, and Service Quotas was
    # asked once
    assert all(response["batchItemFailures"] for response in refused)
    calls = mesh.calls.since(first)
    writes = [call.operation for call in calls if call.service == "ec2" and call.mutating]
    assert writes == ["AuthorizeSecurityGroupIngress"]
    assert [(c.region, c.params) for c in calls if c.operation == "GetServiceQuota"] == [(EAST, EXPECTED)]
    (review,) = Operator(mesh.mesh_file(None), mesh.factory).plan(EAST).groups
    assert (review.quota, review.over_quota, review.rules_after[Family.IPV4]) == (60, True, 49)
    assert len(review.plan.waiting) == 16
