"""A region leaving the mesh: what it revokes in its own groups (sgmesh's rules and references to its
own lists, nothing of the operators'), and which regions it still waits for."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas.rules import InboundRule, Traffic
from sgmesh.leaving import Lagging, lagging, revocations

TCP = Traffic("tcp", 9042, 9042)
OWN_LIST, FOREIGN_LIST = "pl-0123456789abcdef0", "pl-0fedcba9876543210"

MARKED = InboundRule("sgr-1", TCP.from_cidr("203.0.113.1/32"), "sgmesh:demo eu-west-1/db/i-0123456789abcdef0")
MARKED_REFERENCE = InboundRule("sgr-2", TCP.from_list(OWN_LIST), "sgmesh:demo")
# EC2 drops the description of a reference on some paths: the list still says whose it is.
BARE_OWN_REFERENCE = InboundRule("sgr-3", TCP.from_list(OWN_LIST), "")
OPERATOR = InboundRule("sgr-4", TCP.from_cidr("198.51.100.7/32"), "operator bastion")
OPERATOR_REFERENCE = InboundRule("sgr-5", TCP.from_list(FOREIGN_LIST), "partners")
OTHER_CLUSTER = InboundRule("sgr-6", TCP.from_cidr("203.0.113.2/32"), "sgmesh:demo2 us-east-1/db/i-1")
LOOKALIKE = InboundRule("sgr-7", TCP.from_cidr("203.0.113.3/32"), "not sgmesh:demo")
RULES = (MARKED, MARKED_REFERENCE, BARE_OWN_REFERENCE, OPERATOR, OPERATOR_REFERENCE, OTHER_CLUSTER, LOOKALIKE)


@given(st.permutations(RULES))
def test_only_the_clusters_rules_and_references_to_its_own_lists_are_revoked(
    rules: list[InboundRule],
) -> None:
    revoked = revocations("demo", rules, [OWN_LIST])

    assert sorted(rule.rule_id for rule in revoked) == ["sgr-1", "sgr-2", "sgr-3"]


def test_a_group_holding_only_operators_rules_loses_nothing() -> None:
    assert revocations("demo", [OPERATOR, OPERATOR_REFERENCE, OTHER_CLUSTER, LOOKALIKE], [OWN_LIST]) == []


def test_a_region_is_waited_for_until_it_holds_the_retired_version_of_every_source() -> None:
    retired = {"1/eu-west-1/a": 10, "1/eu-west-1/b": 20}
    applied = {
        "us-east-1": {"1/eu-west-1/a": 10, "1/eu-west-1/b": 21},  # done (a newer one is fine)
        "us-west-2": {"1/eu-west-1/a": 9},  # behind on a, nothing of b (a recreated table)
    }

    assert lagging(retired, applied) == [
        Lagging("us-west-2", "1/eu-west-1/a", 9, 10),
        Lagging("us-west-2", "1/eu-west-1/b", None, 20),
    ]
    assert (
        str(lagging(retired, applied)[1])
        == "us-west-2 holds no snapshot of 1/eu-west-1/b, retired at version 20"
    )
    assert lagging(retired, {"us-east-1": applied["us-east-1"]}) == []
