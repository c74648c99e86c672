"""A region still on a release before acknowledgements publishes its snapshots without message
attributes: the upgraded regions' subscription filters still let them through (schemas/routing.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from schemas.events import Cause, CauseKind, Member, MembershipSnapshot, Source
from sgmesh.local.stack import ACCOUNT
from tests.support.mesh import Mesh

EAST = "us-east-1"


def test_a_snapshot_without_a_type_attribute_reaches_every_region_and_is_applied(mesh: Mesh) -> None:
    # GIVEN a converged mesh
    mesh.trueup_everywhere()
    assert mesh.run_until_converged().converged
    stack = mesh.stacks[EAST]
    stored = mesh.members(EAST)
    newcomer = "3.5.140.77"

    # WHEN us-east-1 publishes as an older release does: the snapshot alone, no message attribute
    snapshot = MembershipSnapshot(
        event_id=uuid.uuid4(),
        cluster=mesh.spec.cluster,
        source=Source(account=ACCOUNT, region=EAST, group=stack.group_name),
        version=2**53,
        produced_at=datetime.now(UTC),
        cause=Cause(kind=CauseKind.TRUEUP),
        members=(
            *(Member(instance_id=instance, public_ipv4=f"{ip}/32") for instance, ip in stored.items()),
            Member(instance_id="i-0000000000000077", public_ipv4=f"{newcomer}/32"),
        ),
    )
    mesh.sns(EAST).publish(TopicArn=stack.topic_arn, Message=snapshot.model_dump_json())
    mesh.settle()

    # THEN every region's consumer received and applied it: each admits the newcomer
    for region in mesh.regions:
        admitted = {cidr for *_ports, cidr in mesh.managed_permissions(region)}
        assert f"{newcomer}/32" in admitted, region
