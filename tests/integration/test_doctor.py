"""`sgmesh doctor` on three regions: the wiring the stacks deploy is healthy; a topic recreated outside
the deploy cuts its region off, and the doctor finds and repairs exactly that."""

from __future__ import annotations

from collections import Counter

from sgmesh.doctor import Doctor
from sgmesh.wiring import Part
from tests.support.mesh import Mesh

EUROPE = "eu-west-1"


def converge(mesh: Mesh) -> None:
    for region in mesh.regions:
        mesh.trueup(region)
    mesh.settle()
    mesh.assert_converged()


def test_the_deployed_wiring_is_healthy_and_checking_it_only_reads(mesh: Mesh) -> None:
    first = mesh.calls.mark()

    diagnosis = Doctor(mesh.mesh_file(None), mesh.factory).diagnose()

    assert diagnosis.healthy, diagnosis.lines()
    calls = mesh.calls.since(first)
    assert [call for call in calls if call.mutating] == []
    # Per topic: its attributes and subscriptions once; per queue and topic: the subscription's
    # attributes; per region: two queue policies, the groups, their hooks, the rule and its targets.
    assert Counter(f"{call.service}:{call.operation}" for call in calls) == {
        "sns:GetTopicAttributes": 3,
        "sns:ListSubscriptionsByTopic": 3,
        "sns:GetSubscriptionAttributes": 9,
        "sqs:GetQueueAttributes": 6,
        "auto-scaling:DescribeAutoScalingGroups": 3,
        "auto-scaling:DescribeLifecycleHooks": 3,
        "eventbridge:DescribeRule": 3,
        "eventbridge:ListTargetsByRule": 3,
    }


def test_a_topic_recreated_outside_the_deploy_is_found_and_repaired(mesh: Mesh) -> None:
    converge(mesh)
    # GIVEN eu-west-1's topic deleted and created again under the same name, outside the deploy: SNS
    # dropped every queue's subscription to it, and nothing else changed
    topic = mesh.stacks[EUROPE].topic_arn
    mesh.sns(EUROPE).delete_topic(TopicArn=topic)
    assert mesh.sns(EUROPE).create_topic(Name=topic.split(":")[-1])["TopicArn"] == topic
    # ... so an instance of eu-west-1 terminated by hand stays admitted everywhere after its true-up
    leaver = mesh.terminate_by_hand(EUROPE)
    mesh.trueup(EUROPE)
    mesh.settle()
    assert all(mesh.managed_permissions(region) != mesh.expected_permissions() for region in mesh.regions)

    # WHEN the doctor checks the mesh
    diagnosis = Doctor(mesh.mesh_file(None), mesh.factory).diagnose()

    # THEN it finds every queue's lost subscription to that topic, and only those, each repairable
    assert not diagnosis.healthy
    assert [(f.region, f.part, f.subject) for f in diagnosis.findings] == [
        (region, Part.SUBSCRIPTION, topic) for region in mesh.regions
    ]
    assert all(f.repair is not None for f in diagnosis.findings)

    # WHEN it repairs them
    first = mesh.calls.mark()
    repaired = Doctor(mesh.mesh_file(None), mesh.factory).repair(diagnosis)

    # THEN it subscribed each queue again, in the topic's region, and the wiring is healthy
    subscribes = [call for call in mesh.calls.since(first) if call.mutating]
    assert [(call.region, call.operation, call.params["Endpoint"]) for call in subscribes] == [
        (EUROPE, "Subscribe", mesh.stacks[region].queue_arn) for region in mesh.regions
    ]
    assert repaired.healthy, repaired.lines()
    assert repaired.repaired == diagnosis.findings
    # ... and eu-west-1's next true-up reaches every region again: the leaver is revoked everywhere
    mesh.trueup(EUROPE)
    mesh.settle()
    mesh.assert_converged()
    assert leaver not in mesh.members(EUROPE)
