"""Two clusters deployed in the same regions and managing the same security group never touch each
other's rules."""

from __future__ import annotations

from sgmesh.local.stack import StackSpec
from tests.support.mesh import TWO_REGIONS, Mesh, Provisioner


def rule_ids(mesh: Mesh, region: str) -> set[str]:
    """The ids of the rules carrying the mesh's cluster marker: a rule touched is a rule with a new id."""
    marker = f"sgmesh:{mesh.spec.cluster}"
    return {
        rule["SecurityGroupRuleId"]
        for rule in mesh.ingress(region)
        if rule.get("Description", "").split(" ")[0] == marker
    }


def trueup_and_settle(mesh: Mesh) -> None:
    mesh.trueup_everywhere()
    mesh.settle()


def test_two_clusters_sharing_a_group_keep_to_their_own_rules(aws: str, provisioned: Provisioner) -> None:
    # GIVEN clusters alpha and beta in the same two regions, beta configured to manage alpha's groups
    alpha = provisioned(Mesh(aws, TWO_REGIONS, StackSpec(cluster="alpha", ports="tcp:7000-7001")))
    beta = provisioned(Mesh(aws, TWO_REGIONS, StackSpec(cluster="beta", ports="tcp:7000-7001,udp:7002")))
    for region in TWO_REGIONS:
        shared = alpha.stacks[region].security_group_id
        beta.stacks[region].security_group_id = shared
        beta.stacks[region].environment["SGMESH_SECURITY_GROUP_IDS"] = shared

    # WHEN both true up
    trueup_and_settle(alpha)
    trueup_and_settle(beta)

    # THEN the shared groups hold each cluster's rules for its own members, side by side
    alpha.assert_converged()
    beta.assert_converged()
    assert alpha.managed_cidrs(TWO_REGIONS[0]).isdisjoint(beta.managed_cidrs(TWO_REGIONS[0]))
    alphas_rules = {region: rule_ids(alpha, region) for region in TWO_REGIONS}
    assert all(len(ids) == 4 for ids in alphas_rules.values())

    # WHEN beta's first region scales in to nothing and beta trues up again
    beta.autoscaling(TWO_REGIONS[0]).set_desired_capacity(
        AutoScalingGroupName=beta.stacks[TWO_REGIONS[0]].group_name, DesiredCapacity=0
    )
    trueup_and_settle(beta)

    # THEN beta revoked its own rules for those members, and every one of alpha's rules is untouched
    beta.assert_converged()
    assert len(beta.managed_cidrs(TWO_REGIONS[0])) == 2
    assert {region: rule_ids(alpha, region) for region in TWO_REGIONS} == alphas_rules

    # WHEN alpha scales out and trues up, THEN beta's rules are untouched in turn
    betas_rules = {region: rule_ids(beta, region) for region in TWO_REGIONS}
    alpha.autoscaling(TWO_REGIONS[1]).set_desired_capacity(
        AutoScalingGroupName=alpha.stacks[TWO_REGIONS[1]].group_name, DesiredCapacity=3
    )
    trueup_and_settle(alpha)
    alpha.assert_converged()
    assert len(alpha.managed_cidrs(TWO_REGIONS[1])) == 5
    assert {region: rule_ids(beta, region) for region in TWO_REGIONS} == betas_rules
