"""The local runtime plays Lambda without the process environment: each function gets its region's
environment as an argument and the mesh's clients, bound to the embedded AWS."""

from __future__ import annotations

import os
from typing import Any

import pytest

from sgmesh.local.mesh import LocalMesh
from tests.support.environment import point_nowhere
from tests.support.mesh import TWO_REGIONS


class EnvironmentWatch:
    """A client extension noting, at every call the product makes, what the process environment says."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def register(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build", self._note)

    def _note(self, model: Any, **_: Any) -> None:
        self.seen.append((model.name, os.environ.get("SGMESH_CLUSTER")))


def test_a_mesh_converges_with_the_environment_leading_nowhere_and_leaves_it_unchanged(
    aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a process environment whose AWS settings lead nowhere
    point_nowhere(monkeypatch)
    before = dict(os.environ)
    watch = EnvironmentWatch()

    # WHEN a two-region mesh is provisioned, trued up and scaled out, and runs until it converges
    mesh = LocalMesh(aws, TWO_REGIONS)
    mesh.factory.extend(watch)
    try:
        mesh.provision(instances_per_region=1)
        mesh.trueup_everywhere()
        mesh.scale(TWO_REGIONS[0], 2)
        outcome = mesh.run_until_converged()
    finally:
        mesh.close()

    # THEN it converged, every function ran on the mesh's clients without any SGMESH_* setting in the
    # process environment, and the environment is as it was
    assert outcome.converged
    operations = {operation for operation, _cluster in watch.seen}
    assert {"Publish", "AuthorizeSecurityGroupIngress", "CompleteLifecycleAction"} <= operations
    assert {cluster for _operation, cluster in watch.seen} == {None}
    assert dict(os.environ) == before
