"""The admission barrier on three regions: a launch is completed once every region enforces it, at
its timeout when a region is silent, and only ever by a call in its own region."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from cloud.dynamodb import Table
from producers.bootstrap import logger as producer_logger
from schemas.admission import AdmissionStatus
from schemas.events import ACKNOWLEDGEMENT_TYPE
from sgmesh.local.lifecycle import Completion
from sgmesh.local.stack import StackSpec
from tests.support.mesh import Mesh, Provisioner

EAST, WEST, EU = "us-east-1", "us-west-2", "eu-west-1"
TIMEOUT = 120


def barrier_mesh(
    aws: str, provisioned: Provisioner, *, buffered: bool = True, timeout: int = TIMEOUT
) -> Mesh:
    spec = StackSpec(admission_barrier=True, admission_timeout_seconds=timeout, lifecycle_buffer=buffered)
    mesh = provisioned(Mesh(aws, spec=spec))
    mesh.trueup_everywhere()
    assert mesh.run_until_converged().converged
    return mesh


def authorizing(mesh: Mesh, region: str, address: str) -> int:
    """The position, in every product call of every region, of the region's Authorize admitting `address`."""
    (position,) = [
        index
        for index, call in enumerate(mesh.calls.calls)
        if call.region == region
        and call.operation == "AuthorizeSecurityGroupIngress"
        and address in json.dumps(call.params)
    ]
    return position


def completing(mesh: Mesh, instance_id: str) -> tuple[int, Any]:
    ((position, call),) = [
        (index, call)
        for index, call in enumerate(mesh.calls.calls)
        if call.operation == "CompleteLifecycleAction" and call.params["InstanceId"] == instance_id
    ]
    return position, call


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "eventbridge-to-the-function"])
def test_a_launch_is_completed_only_after_every_region_applied_the_member(
    aws: str, provisioned: Provisioner, buffered: bool
) -> None:
    # GIVEN three converged regions whose launches wait for the barrier
    mesh = barrier_mesh(aws, provisioned, buffered=buffered)

    # WHEN an instance launches in us-east-1 (its event reaches the function directly, or the buffer)
    (launched,) = mesh.scale(EAST, 3)
    address = mesh.members(EAST)[launched]
    outcome = mesh.run_until_converged()

    # THEN it was completed with CONTINUE, in its own region, after each region authorized its address
    assert outcome.converged
    position, call = completing(mesh, launched)
    assert (call.region, call.params["LifecycleActionResult"]) == (EAST, "CONTINUE")
    assert all(authorizing(mesh, region, address) < position for region in (EAST, WEST, EU))
    assert [c for c in mesh.hooks.completions if c.instance_id == launched] == [
        Completion(
            EAST,
            call.params["AutoScalingGroupName"],
            call.params["LifecycleHookName"],
            launched,
            call.params["LifecycleActionToken"],
            "CONTINUE",
            by_timeout=False,
        )
    ]
    # AND the admission timer was set for the configured timeout, on the region's own buffer
    (timer,) = [r for r in mesh.delays.requests if launched in r["MessageBody"]]
    assert (timer["DelaySeconds"], timer["QueueUrl"]) == (TIMEOUT, mesh.buffers[EAST].queue.url)
    # AND no function wrote to another region
    assert mesh.cross_region_writes() == []


class Warnings(logging.Handler):
    """The producer's warnings, as log records (their `extra` fields are attributes)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_with_one_region_cut_off_the_launch_completes_at_the_timeout_naming_that_region(
    aws: str, provisioned: Provisioner
) -> None:
    # GIVEN eu-west-1 receives nothing any more
    mesh = barrier_mesh(aws, provisioned)
    mesh.cut_off(EU)
    warnings = Warnings()
    logging.getLogger(producer_logger.name).addHandler(warnings)

    # WHEN an instance launches in us-east-1
    (launched,) = mesh.scale(EAST, 3)
    started = mesh.clock.now
    mesh.run_for(TIMEOUT - 10)

    # THEN it waits while the timeout runs (the other regions admitted it long ago)
    assert mesh.hooks.waiting_state(launched) == "Pending:Wait"
    mesh.run_for(20)
    # AND at the timeout it is completed with the configured CONTINUE, by the product, in its region
    (completion,) = [c for c in mesh.hooks.completions if c.instance_id == launched]
    assert (completion.result, completion.by_timeout) == ("CONTINUE", False)
    _position, call = completing(mesh, launched)
    assert call.region == EAST
    assert TIMEOUT <= mesh.clock.now - started <= TIMEOUT + 20
    # AND the log names eu-west-1 as the region that did not acknowledge
    logging.getLogger(producer_logger.name).removeHandler(warnings)
    (line,) = [r for r in warnings.records if str(r.msg).startswith("admission timeout")]
    assert (vars(line)["instance_id"], vars(line)["missing_regions"]) == (launched, [f"123456789012/{EU}"])
    assert mesh.cross_region_writes() == []


class AcknowledgementCrash(Exception):
    """The consumer dies between applying its batch and acknowledging it."""


class CrashBeforeAcknowledging:
    """us-west-2's consumer dies once, right before it publishes an acknowledgement."""

    def __init__(self) -> None:
        self.crashed = 0

    def register(self, client: Any) -> None:
        if client.meta.region_name != WEST or client.meta.service_model.service_id.hyphenize() != "sns":
            return

        def crash(params: dict[str, Any], **_: Any) -> None:
            attributes = params.get("MessageAttributes", {})
            if attributes.get("type", {}).get("StringValue") == ACKNOWLEDGEMENT_TYPE and not self.crashed:
                self.crashed += 1
                raise AcknowledgementCrash("us-west-2's consumer died after applying")

        client.meta.events.register("before-parameter-build.sns.Publish", crash)


def test_a_crash_between_apply_and_acknowledgement_is_repaired_by_the_redelivery(
    aws: str, provisioned: Provisioner
) -> None:
    # GIVEN converged regions, and us-west-2's consumer about to die before its next acknowledgement;
    # launches wait longer than SQS takes to deliver a failed batch again (its visibility timeout)
    timeout = 500
    mesh = barrier_mesh(aws, provisioned, timeout=timeout)
    assert mesh.spec.visibility_timeout_seconds < timeout
    crash = CrashBeforeAcknowledging()
    crash.register(mesh.factory.sns(WEST))  # the client us-west-2's consumer publishes with

    # WHEN an instance launches in us-east-1
    (launched,) = mesh.scale(EAST, 3)
    address = mesh.members(EAST)[launched]
    mesh.run_until_converged()

    # THEN us-west-2 applied it, died, got the batch again (stale now) and acknowledged: the launch is
    # admitted, before its timeout, after us-west-2's rules were in
    assert crash.crashed == 1
    position, _call = completing(mesh, launched)
    assert authorizing(mesh, WEST, address) < position
    (completion,) = [c for c in mesh.hooks.completions if c.instance_id == launched]
    assert (completion.result, completion.by_timeout) == ("CONTINUE", False)
    table = Table(mesh.factory.dynamodb(EAST), mesh.stacks[EAST].table_name)
    (admission,) = [a for a in table.admissions(mesh.spec.cluster) if a.instance_id == launched]
    assert admission.status is AdmissionStatus.ADMITTED
    assert mesh.cross_region_writes() == []
