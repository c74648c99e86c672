"""Observe mode on the three-region mesh: the consumers write nothing to EC2 while `status` shows the
drift, producers publish and complete lifecycle actions as usual, and switching it off converges."""

from __future__ import annotations

from cloud.clients import ClientFactory
from sgmesh.operator import Operator
from tests.support.mesh import Mesh

EAST = "us-east-1"


def ec2_writes(mesh: Mesh, handler: str = "apply") -> list[str]:
    """The mutating EC2 calls every invocation of the handler made."""
    return [
        call.operation
        for invocation in mesh.invocations
        if invocation.handler == handler
        for call in invocation.calls
        if call.service == "ec2" and call.mutating
    ]


def test_observing_regions_write_nothing_while_status_shows_the_drift_and_switching_off_converges(
    mesh: Mesh,
) -> None:
    # GIVEN a mesh deployed in observe mode on a cluster that already runs
    mesh.set_environment(SGMESH_OBSERVE="true")
    # WHEN every region's true-up publishes and every consumer gets every snapshot, and an instance
    # launches through its lifecycle hook
    mesh.trueup_everywhere()
    mesh.settle()
    (launched,) = mesh.scale(EAST, 3)
    mesh.deliver_lifecycle_events(EAST, 1)
    mesh.settle()

    # THEN no consumer made a single EC2 write: every group holds only the operator's rule
    assert ec2_writes(mesh) == []
    assert all(mesh.managed_permissions(region) == set() for region in mesh.regions)
    assert all(mesh.has_operator_rule(region) for region in mesh.regions)
    # ... the producers published and completed the launch as usual
    (completion,) = mesh.completion_calls()
    assert (completion.params["InstanceId"], completion.params["LifecycleActionResult"]) == (
        launched,
        "CONTINUE",
    )
    # ... every table holds every source, and status shows each region observing, drifting by every rule
    operator = Operator(mesh.mesh_file(None), ClientFactory(mesh.session))
    expected = len(mesh.expected_permissions())
    for status in operator.status():
        assert status.observing
        assert len(status.sources) == len(mesh.regions)
        (group,) = status.groups
        assert (group.to_authorize, group.to_revoke) == (expected, 0)

    # WHEN a deploy switches observe mode off, and the next true-up runs
    mesh.set_environment(SGMESH_OBSERVE="false")
    mesh.trueup_everywhere()
    mesh.settle()

    # THEN every region converges, the operator's rule kept, and status shows no region observing
    mesh.assert_converged()
    assert mesh.cross_region_writes() == []
    statuses = Operator(mesh.mesh_file(None), ClientFactory(mesh.session)).status()
    assert [status.observing for status in statuses] == [False] * len(mesh.regions)
    assert all(group.in_sync for status in statuses for group in status.groups)
