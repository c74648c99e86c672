"""(c) Hypothesis over delivery schedules: loss, duplication (x1..x5) and reordering of snapshots."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgmesh.local.stack import StackSpec
from tests.chaos.harness import ChaosMesh
from tests.chaos.scenarios import Schedule, run_schedule, start
from tests.support.mesh import TWO_REGIONS, Provisioner

# make chaos raises this; each example costs about a second of embedded AWS.
EXAMPLES = int(os.environ.get("SGMESH_CHAOS_EXAMPLES", "10"))

schedules = st.builds(
    Schedule,
    seed=st.integers(0, 2**16),
    loss=st.sampled_from([0.0, 0.2, 0.5]),
    duplication=st.sampled_from([0.0, 0.3, 1.0]),
    delay=st.sampled_from([0.0, 0.3, 0.7]),
    shuffle=st.booleans(),
    scalings=st.lists(st.tuples(st.sampled_from(TWO_REGIONS), st.integers(1, 4)), min_size=1, max_size=3).map(
        tuple
    ),
)


def test_any_delivery_schedule_keeps_the_newest_and_the_true_up_repairs_the_rest(
    aws: str,
    provisioned: Provisioner,
) -> None:
    # One mesh for all examples (provisioning costs more than an example); each ends converged.
    mesh = provisioned(ChaosMesh(aws, TWO_REGIONS, StackSpec()))
    start(mesh)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(schedule=schedules)
    def schedule_holds(schedule: Schedule) -> None:
        assert run_schedule(mesh, schedule) == []
        assert all(mesh.has_operator_rule(region) for region in mesh.regions)

    schedule_holds()
