"""The producer's side of the admission barrier over fakes: a launch is recorded before the version that
admits it is published, completed once, and timed out as configured."""

from __future__ import annotations

from datetime import timedelta

from aws_lambda_powertools.logging import Logger

from producers.admission import AdmissionBarrier
from producers.metrics import ProducerOutcome
from producers.service import SnapshotService
from schemas.admission import AckRecord, AdmissionStatus
from schemas.lifecycle import AdmissionCheck, LifecycleAction, Place, parse_producer_event
from schemas.settings import Settings
from tests.fakes import CLUSTER, PRODUCED_AT, FakeAcknowledgementBook, FakeAdmissionBook, FakeLifecycleQueue
from tests.unit.test_snapshot_service import A1, A3, TOKEN, TOPIC, Producer, action, producer_settings

ACCOUNT = "111111111111"
HERE, THERE = f"{ACCOUNT}/eu-west-1", f"{ACCOUNT}/us-east-1"
SOURCE = f"{ACCOUNT}/eu-west-1/asg-a"
QUEUE = f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/sgmesh-prod-lifecycle-buffer"


def barrier_settings(**overrides: str) -> Settings:
    return producer_settings(
        **{
            "SGMESH_ADMISSION_QUEUE_URL": QUEUE,
            "SGMESH_PEER_TOPIC_ARNS": f"{TOPIC},arn:aws:sns:us-east-1:{ACCOUNT}:sgmesh-prod",
            **overrides,
        }
    )


class Barrier:
    """A producer whose launches wait for the barrier, over fakes sharing one journal."""

    def __init__(self, **overrides: str) -> None:
        self.producer = Producer(settings=barrier_settings(**overrides))
        self.acks = FakeAcknowledgementBook()
        self.book = FakeAdmissionBook(self.acks, self.producer.journal)
        self.queue = FakeLifecycleQueue()
        self.redeploy(**overrides)

    def redeploy(self, **overrides: str) -> None:
        """The service as the composition root wires it (producers.bootstrap), over the same fakes."""
        producer = self.producer
        producer.settings = barrier_settings(**overrides)
        producer.service = SnapshotService(
            settings=producer.settings,
            groups=producer.groups,
            addresses=producer.addresses,
            ledger=producer.ledger,
            topic=producer.topic,
            hooks=producer.hooks,
            outcomes=producer.outcomes,
            logger=Logger(service="test"),
            barrier=AdmissionBarrier(
                settings=producer.settings,
                account=ACCOUNT,
                book=self.book,
                queue=self.queue,
                hooks=producer.hooks,
                outcomes=producer.outcomes,
                logger=Logger(service="test"),
                clock=lambda: producer.now,
            ),
            clock=lambda: producer.now,
            new_event_id=lambda: next(producer.event_ids),
        )

    def acknowledge(self, region: str, version: int) -> None:
        self.acks.record_acknowledgement(
            CLUSTER, AckRecord(SOURCE, region, version, PRODUCED_AT, PRODUCED_AT + timedelta(seconds=3))
        )

    def status(self, instance_id: str) -> AdmissionStatus:
        (admission,) = [a for a in self.book.admissions(CLUSTER) if a.instance_id == instance_id]
        return admission.status


def test_a_launch_is_recorded_before_its_version_is_published_and_not_completed_yet() -> None:
    barrier = Barrier()
    barrier.producer.join("asg-a", A3, "54.1.0.3")

    outcome = barrier.producer.service.on_lifecycle_actions([action(A3, launching=True)])

    # THEN recorded, then published; held, not completed, nothing to retry
    journal = barrier.producer.journal
    (published,) = outcome.published
    assert journal.index(f"hold {A3} for v{published.version}") < journal.index(
        f"publish asg-a v{published.version}"
    )
    assert (outcome.held, outcome.completed, outcome.to_retry) == ([action(A3, launching=True)], [], [])
    assert barrier.producer.hooks.results == []
    # AND its timer: one delayed check on the region's own buffer, naming it
    ((event, delay),) = barrier.queue.sent
    assert (parse_producer_event(event), delay) == (AdmissionCheck(("asg-a",), (A3,)), 120)


def test_a_launch_is_completed_once_every_peer_region_enforces_its_version_and_only_once() -> None:
    barrier = Barrier()
    barrier.producer.join("asg-a", A3, "54.1.0.3")
    (published,) = barrier.producer.service.on_lifecycle_actions([action(A3, launching=True)]).published
    check = AdmissionCheck(("asg-a",))

    barrier.acknowledge(HERE, published.version)
    barrier.producer.service.check_admissions([check])
    assert barrier.producer.hooks.results == []  # us-east-1 has not acknowledged yet

    barrier.acknowledge(THERE, published.version + 5)  # a newer version admits it too
    barrier.producer.service.check_admissions([check, check])  # a duplicate check, in the same batch

    assert barrier.producer.hooks.results == [(A3, "CONTINUE")]
    assert barrier.status(A3) is AdmissionStatus.ADMITTED
    assert barrier.producer.outcomes.counts[ProducerOutcome.LAUNCHES_ADMITTED] == 1


def test_at_its_deadline_a_launch_is_completed_as_configured_and_counted() -> None:
    barrier = Barrier(SGMESH_ADMISSION_TIMEOUT_RESULT="ABANDON")
    barrier.producer.join("asg-a", A3, "54.1.0.3")
    (published,) = barrier.producer.service.on_lifecycle_actions([action(A3, launching=True)]).published
    barrier.acknowledge(HERE, published.version)
    ((timer, _delay),) = barrier.queue.sent

    barrier.producer.service.handle(parse_producer_event(timer))

    assert barrier.producer.hooks.results == [(A3, "ABANDON")]
    assert barrier.status(A3) is AdmissionStatus.TIMED_OUT
    assert barrier.producer.outcomes.counts[ProducerOutcome.ADMISSION_TIMEOUTS] == 1
    # AND a late acknowledgement completes nothing more
    barrier.acknowledge(THERE, published.version)
    barrier.producer.service.check_admissions([AdmissionCheck(("asg-a",))])
    assert barrier.producer.hooks.results == [(A3, "ABANDON")]


def test_a_region_removed_from_the_peers_is_no_longer_waited_for() -> None:
    barrier = Barrier()
    barrier.producer.join("asg-a", A3, "54.1.0.3")
    (published,) = barrier.producer.service.on_lifecycle_actions([action(A3, launching=True)]).published
    barrier.acknowledge(HERE, published.version)

    # WHEN the stack is deployed again without us-east-1 among the peers
    barrier.redeploy(SGMESH_PEER_TOPIC_ARNS=TOPIC)
    barrier.producer.service.check_admissions([AdmissionCheck(("asg-a",))])

    assert barrier.producer.hooks.results == [(A3, "CONTINUE")]


def test_a_redelivered_launch_whose_version_every_region_holds_is_completed_at_once() -> None:
    barrier = Barrier()
    barrier.producer.join("asg-a", A3, "54.1.0.3")
    (published,) = barrier.producer.service.on_lifecycle_actions([action(A3, launching=True)]).published
    for region in (HERE, THERE):
        barrier.acknowledge(region, published.version)
    redelivered = LifecycleAction("asg-a", A3, "sgmesh-hook", TOKEN, launching=True)
    barrier.producer.hooks.results.clear()

    # WHEN the same event comes again (its first completion was lost, say): nothing new to publish
    outcome = barrier.producer.service.on_lifecycle_actions([redelivered])

    assert outcome.published == []
    assert barrier.producer.hooks.results == [(A3, "CONTINUE")]


def test_terminations_and_launches_into_the_warm_pool_are_completed_at_once() -> None:
    barrier = Barrier()
    barrier.producer.leave("asg-a", A1)
    barrier.producer.join("asg-a", A3, "54.1.0.3", state="Warmed:Pending:Wait")
    warm = LifecycleAction("asg-a", A3, "sgmesh-hook", TOKEN, launching=True, destination=Place.WARM_POOL)

    outcome = barrier.producer.service.on_lifecycle_actions([action(A1, launching=False), warm])

    assert outcome.held == []
    assert sorted(barrier.producer.hooks.results) == sorted([(A1, "CONTINUE"), (A3, "CONTINUE")])
    assert barrier.queue.sent == []


def test_a_launch_handed_straight_to_the_function_goes_through_the_buffer() -> None:
    barrier = Barrier()
    barrier.producer.join("asg-a", A3, "54.1.0.3")
    launch = action(A3, launching=True)

    assert barrier.producer.service.on_lifecycle_action(launch) == []

    ((event, delay),) = barrier.queue.sent
    assert (parse_producer_event(event), delay) == (launch, 0)
    assert barrier.producer.topic.published == []


def test_without_a_queue_or_with_no_timeout_launches_are_completed_once_published() -> None:
    for overrides in ({"SGMESH_ADMISSION_QUEUE_URL": ""}, {"SGMESH_ADMISSION_TIMEOUT_SECONDS": "0"}):
        producer = Producer(settings=barrier_settings(**overrides))
        producer.join("asg-a", A3, "54.1.0.3")
        producer.service.on_lifecycle_actions([action(A3, launching=True)])
        assert producer.hooks.results == [(A3, "CONTINUE")]
