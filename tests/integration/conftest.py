"""Fixtures for integration tests: a provisioned three-region mesh on the embedded AWS."""

from __future__ import annotations

import pytest

from tests.support.lifecycle_hooks import LifecycleHookEmulator
from tests.support.mesh import Mesh
from tests.support.recording import RecordingClientFactory


@pytest.fixture
def mesh(aws: str, recorder: RecordingClientFactory, hooks: LifecycleHookEmulator) -> Mesh:
    return Mesh(recorder, hooks).provision(instances_per_region=2)
