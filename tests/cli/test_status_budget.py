"""`sgmesh status` shows each group's rule budget: rules per family, the quota and where it came
from (Service Quotas or the setting), and the headroom left."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import boto3
from botocore.client import BaseClient
from botocore.stub import Stubber

from schemas.settings import AddressMode, TargetMode
from sgmesh.local.mesh import LocalMesh
from sgmesh.meshfile import load, render
from tests.cli.conftest import Run

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import IpPermissionTypeDef

EAST, WEST = "us-east-1", "eu-west-1"
# Two members per region, two regions, two port specs: every group admits 4 addresses x 2 ports.
RULES = 8


def test_a_converged_mesh_shows_the_applied_quota_and_the_headroom_per_family(
    sgmesh: Run, mesh_file: Path
) -> None:
    # GIVEN a converged mesh whose account quota (moto's Service Quotas) is the default 60, setting 60
    # WHEN the operator asks for the status as JSON
    statuses = sgmesh.json("status", "--mesh", str(mesh_file))
    # THEN every group shows its rules per family, the quota from Service Quotas, and what is left
    for status in statuses:
        budget = status["rule_budget"]
        assert (budget["quota"], budget["origin"], budget["setting"], budget["service_quota"]) == (
            60,
            "service-quotas",
            60,
            60,
        )
        (group,) = status["groups"]
        assert group["rules_used"] == {"ipv4": RULES, "ipv6": 0}
        assert (group["quota"], group["quota_origin"]) == (60, "service-quotas")
        assert group["headroom"] == {"ipv4": 60 - RULES, "ipv6": 60}
    # AND the table says the same
    code, table = sgmesh("status", "--mesh", str(mesh_file), "--region", EAST)
    assert code == 0
    assert "quota 60 per family (service-quotas)" in table
    assert f"{RULES} / 0" in table
    assert f"{60 - RULES} / 60" in table


def test_a_setting_under_the_account_quota_bounds_the_budget_and_drift_counts_against_it(
    sgmesh: Run, mesh_file: Path, local_mesh: LocalMesh
) -> None:
    # GIVEN rule_quota = 9 in the mesh file (under the account's 60), and one managed rule removed
    # from eu-west-1's group by hand
    mesh_file.write_text(mesh_file.read_text().replace("rule_quota = 60", "rule_quota = 9"))
    rule = next(r for r in local_mesh.ingress(WEST) if r.get("Description", "").startswith("sgmesh:demo"))
    boto3.client("ec2", region_name=WEST).revoke_security_group_ingress(
        GroupId=local_mesh.stacks[WEST].security_group_id, SecurityGroupRuleIds=[rule["SecurityGroupRuleId"]]
    )
    # WHEN the operator asks for eu-west-1's status
    (west,) = sgmesh.json("status", "--mesh", str(mesh_file), "--region", WEST)
    # THEN the setting is the quota, the account's is shown beside it, and the headroom is what is
    # left once the missing rule is back
    assert (west["rule_budget"]["quota"], west["rule_budget"]["origin"]) == (9, "setting")
    assert west["rule_budget"]["service_quota"] == 60
    (group,) = west["groups"]
    assert (group["to_authorize"], group["rules_used"]["ipv4"], group["rules_after"]["ipv4"]) == (
        1,
        RULES - 1,
        RULES,
    )
    assert group["headroom"] == {"ipv4": 9 - RULES, "ipv6": 9}
    _code, table = sgmesh("status", "--mesh", str(mesh_file), "--region", WEST)
    assert "quota 9 per family (setting; account quota 60)" in table


def test_when_service_quotas_refuses_the_setting_is_the_budget_and_the_reason_is_shown(
    sgmesh: Run, mesh_file: Path, local_mesh: LocalMesh
) -> None:
    # GIVEN the operator's credentials may not read Service Quotas in us-east-1 (moto grants
    # everything, so the refusal is stubbed on the client the CLI is handed)
    client = local_mesh.factory.service_quotas(EAST)
    with Stubber(cast(BaseClient, client)) as stub:
        stub.add_client_error(
            "get_service_quota",
            "AccessDeniedException",
            "User is not authorized to perform: servicequotas:GetServiceQuota",
            expected_params={"ServiceCode": "vpc", "QuotaCode": "L-0EA8095F"},
        )
        # WHEN the operator asks for its status as JSON
        (east,) = sgmesh.json(
            "status", "--mesh", str(mesh_file), "--region", EAST, clients=local_mesh.factory
        )
        stub.assert_no_pending_responses()
    # THEN the output is still JSON, the setting is the budget, and it says why
    budget = east["rule_budget"]
    assert (budget["quota"], budget["origin"], budget["service_quota"]) == (60, "setting", None)
    assert "AccessDeniedException" in budget["unreadable"]
    assert east["groups"][0]["headroom"]["ipv4"] == 60 - RULES


def test_in_prefix_list_mode_a_group_shows_its_weighed_rules_and_a_list_its_entries(
    sgmesh: Run, mesh_file: Path, local_mesh: LocalMesh
) -> None:
    # GIVEN eu-west-1 switched to IPv6 prefix lists: a list of MaxEntries 10 that the group already
    # references on one of its two port specs, and the 8 per-address IPv4 rules still in place
    ec2 = boto3.client("ec2", region_name=WEST)
    group_id = local_mesh.stacks[WEST].security_group_id
    listed = ec2.create_managed_prefix_list(
        PrefixListName="sgmesh-demo-ipv6", AddressFamily="IPv6", MaxEntries=10
    )["PrefixList"]["PrefixListId"]
    reference: IpPermissionTypeDef = {
        "IpProtocol": "tcp",
        "FromPort": 7000,
        "ToPort": 7001,
        "PrefixListIds": [{"PrefixListId": listed, "Description": "sgmesh:demo prefix-list ipv6"}],
    }
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[reference])
    mesh = load(mesh_file)
    regions = dict(mesh.regions)
    regions[WEST] = regions[WEST].model_copy(update={"prefix_list_ids": (listed,)})
    switched = mesh.model_copy(
        update={"target": TargetMode.PREFIX_LIST, "address": AddressMode.IPV6, "regions": regions}
    )
    mesh_file.write_text(render(switched))

    # WHEN the operator asks for eu-west-1's status
    (west,) = sgmesh.json("status", "--mesh", str(mesh_file), "--region", WEST)

    # THEN the group counts the reference as its list's MaxEntries, in the list's family only: 8 IPv4
    # rules and 10 IPv6 now; once the second reference is added and the IPv4 rules revoked, 20 IPv6
    (group,) = west["groups"]
    assert group["group_id"] == group_id
    assert (group["to_authorize"], group["to_revoke"]) == (1, RULES)
    assert group["rules_used"] == {"ipv4": RULES, "ipv6": 10}
    assert group["rules_after"] == {"ipv6": 20}
    assert group["headroom"] == {"ipv4": 60, "ipv6": 40}
    # AND the list is reported as a list: its entries and MaxEntries, before and after
    (prefix_list,) = west["lists"]
    assert prefix_list["prefix_list_id"] == listed
    assert (prefix_list["entries_before"], prefix_list["entries_after"]) == (0, 0)
    assert (prefix_list["max_entries_before"], prefix_list["max_entries_after"]) == (10, 10)
    _code, table = sgmesh("status", "--mesh", str(mesh_file), "--region", WEST)
    assert f"{RULES} / 10" in table
    assert "prefix lists" in table
    # AND the plan shows the list, then the group: the reference it gains, the rules it loses
    planned_list, planned_group = sgmesh.json("plan", "--mesh", str(mesh_file), "--region", WEST)
    assert (planned_list["prefix_list_id"], planned_list["add"], planned_list["remove"]) == (listed, [], [])
    assert planned_group["authorize"] == [f"tcp:9042-9042 from {listed}"]
    assert len(planned_group["revoke"]) == RULES
    assert (planned_group["rules_before"], planned_group["rules_after"], planned_group["over_quota"]) == (
        {"ipv4": RULES, "ipv6": 10},
        {"ipv6": 20},
        False,
    )
