"""The producer's outcomes as CloudWatch metrics, each written as one EMF log line when it happens."""

from __future__ import annotations

from enum import StrEnum

NAMESPACE = "sgmesh"
SERVICE = "sgmesh-producer"


class ProducerOutcome(StrEnum):
    """One metric per outcome an operator must hear of."""

    # Instances left out of their group's snapshot: an address the address mode uses is unusable.
    INSTANCES_LEFT_OUT = "InstancesLeftOut"
    # Lifecycle actions completed (CONTINUE) that Auto Scaling still held: launches and terminations
    # that went ahead on time.
    LIFECYCLE_COMPLETED = "LifecycleActionsCompleted"
    # Launches completed once every peer region acknowledged a version admitting them, and launches
    # completed at the admission timeout instead (SGMESH_ADMISSION_TIMEOUT_RESULT), some region silent.
    LAUNCHES_ADMITTED = "LaunchesAdmitted"
    ADMISSION_TIMEOUTS = "AdmissionTimeouts"


class EmfOutcomes:
    """Counts outcomes as EMF lines, at once: they are few (one per launch at most), so a handler
    flushes nothing when none happened (and Powertools' metrics load only then)."""

    def __init__(self, cluster: str) -> None:
        self._cluster = cluster

    def count(self, outcome: ProducerOutcome, value: int = 1) -> None:
        if value <= 0:
            return
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        with single_metric(
            name=outcome.value,
            unit=MetricUnit.Count,
            value=value,
            namespace=NAMESPACE,
            default_dimensions={"service": SERVICE, "cluster": self._cluster},
        ):
            pass
