"""The chaos scenarios, shortened for make test (make chaos runs them larger: tests/chaos/run.py)."""

from __future__ import annotations

import pytest

from tests.chaos.harness import ChaosMesh
from tests.chaos.scenarios import SCENARIOS
from tests.support.mesh import Provisioner

# Small enough for make test; each still injects every fault of its kind at least once. Delivery
# schedules run under Hypothesis here (test_schedules.py).
SIZES = {
    "region_outage": 2,
    "crash_points": 1,
    "throttling": 1,
    "poison_batch": 1,
    "leaving_by_hand": 1,
    "racing_writers": 1,
    "lifecycle_completion": 1,
    "group_retired": 1,
    "table_recreated": 1,
    "region_readded": 1,
    "consumer_table_recreated": 1,
    "quota_pressure": 1,
    "acknowledgements_lossy": 2,
}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_scenario_loses_no_member_adds_no_rule_and_converges(
    aws: str, provisioned: Provisioner, name: str
) -> None:
    scenario, regions, spec = SCENARIOS[name]
    mesh = provisioned(ChaosMesh(aws, regions, spec))

    report = scenario(mesh, SIZES[name])

    assert report.violations == []
    assert (report.lost_members, report.extra_rules, report.converged) == (0, 0, True)
