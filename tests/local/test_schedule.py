"""The emulated true-up schedule, and running the mesh until it converges (or cannot)."""

from __future__ import annotations

from sgmesh.local.stack import StackSpec
from tests.support.mesh import TWO_REGIONS, Mesh, Provisioner


class WatchedMesh(Mesh):
    """Notes, each time the schedule fires, whether the mesh had converged just before."""

    def __init__(self, endpoint: str, regions: tuple[str, ...], spec: StackSpec | None = None) -> None:
        super().__init__(endpoint, regions, spec)
        self.converged_when_fired: list[tuple[float, bool]] = []

    def scheduled_trueup(self) -> None:
        self.converged_when_fired.append((self.clock.now, self.converged()))
        super().scheduled_trueup()


def converge(mesh: Mesh) -> None:
    mesh.trueup_everywhere()
    assert mesh.run_until_converged().converged


def test_given_an_interval_then_the_trueup_fires_in_every_region_once_per_interval(
    aws: str,
    provisioned: Provisioner,
) -> None:
    # GIVEN a mesh whose schedule fires every 120 s of simulated time
    mesh = provisioned(Mesh(aws, TWO_REGIONS, StackSpec(trueup_interval_seconds=120)))

    # WHEN ten minutes pass, the runtime acting every 30 s
    for moment in range(0, 601, 30):
        mesh.clock.advance_to(moment)
        mesh.step()

    # THEN every region's true-up ran at 120, 240, 360, 480 and 600 s, and never otherwise
    for region in mesh.regions:
        assert [i.at for i in mesh.handled(region, "trueup")] == [120, 240, 360, 480, 600]
    assert mesh.schedule.fired == 5


def test_given_a_hand_terminated_instance_then_only_the_scheduled_trueup_removes_it(
    aws: str,
    provisioned: Provisioner,
) -> None:
    # GIVEN a converged mesh, WHEN an operator terminates a us-west-2 instance in EC2 (no lifecycle event)
    mesh = provisioned(WatchedMesh(aws, TWO_REGIONS))
    converge(mesh)
    mesh.converged_when_fired.clear()
    address = mesh.members("us-west-2")[victim := mesh.terminate_by_hand("us-west-2")]
    assert not mesh.converged()

    # WHEN the runtime runs until it converges
    convergence = mesh.run_until_converged()

    # THEN it took until the schedule fired: the instance's rules stayed everywhere till then
    interval = mesh.spec.trueup_interval_seconds
    assert convergence.converged
    assert interval - 10 <= convergence.sim_seconds <= interval
    assert mesh.converged_when_fired == [(interval, False)]
    assert victim not in mesh.members("us-west-2")
    assert all(f"{address}/32" not in mesh.managed_cidrs(region) for region in mesh.regions)


def test_given_a_rule_quota_too_small_then_run_until_converged_gives_up_unconverged(
    aws: str,
    provisioned: Provisioner,
) -> None:
    # GIVEN a mesh that needs 4 members x 2 ports = 8 rules per group, allowed 5 (with the operator's)
    mesh = provisioned(Mesh(aws, TWO_REGIONS, StackSpec(rule_quota=5)))
    mesh.trueup_everywhere()

    # WHEN it runs just past the first retry (which comes after the visibility timeout)
    limit = mesh.spec.visibility_timeout_seconds + 40
    convergence = mesh.run_until_converged(max_sim_seconds=limit)

    # THEN it reports that it did not converge, having used exactly the time allowed; two whole members
    # went in (1 + 2 x 2 = 5 rules) and the batch failed for the others, every time
    assert not convergence.converged
    assert convergence.sim_seconds == limit
    snapshots = [i for i in mesh.handled("us-east-1", "apply") if i.result["batchItemFailures"]]
    assert len(snapshots) >= 2, "the failed batch was retried"
    assert all(len(mesh.managed_permissions(region)) == 4 for region in mesh.regions)
