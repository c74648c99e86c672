"""The consumer's outcomes as CloudWatch metrics, written as EMF log lines through Powertools."""

from __future__ import annotations

from enum import StrEnum

from aws_lambda_powertools.metrics import Metrics, MetricUnit, single_metric

NAMESPACE = "sgmesh"
SERVICE = "sgmesh-consumer"


class Outcome(StrEnum):
    """One metric per outcome; the template's alarms name these."""

    APPLIED = "SnapshotsApplied"
    STALE = "SnapshotsStale"
    EXPIRED = "SnapshotsExpired"
    REJECTED = "RecordsRejected"
    QUOTA_EXCEEDED = "RuleQuotaExceeded"
    CONFLICT_RETRIED = "ConflictRetries"
    THROTTLED = "ApiThrottled"
    RETRIED = "RecordsRetried"
    RULES_AUTHORIZED = "RulesAuthorized"
    RULES_REVOKED = "RulesRevoked"
    RESYNC_REQUESTED = "ResyncRequested"
    # Snapshots re-published for resync requests, and requests dropped: answered too often this minute.
    RESYNC_ANSWERED = "ResyncAnswers"
    RESYNC_DROPPED = "ResyncRequestsDropped"
    # Acknowledgements of this region's sources recorded (newer than the region's last), and the time
    # from a snapshot's produced_at to the last region's acknowledgement of it (a version every peer
    # region now enforces).
    ACKNOWLEDGEMENTS = "AcknowledgementsRecorded"
    CONVERGENCE = "MeshConvergenceSeconds"
    # A gauge, not a count: the fewest rules any managed group can still take, in either family.
    RULE_HEADROOM = "RuleHeadroom"
    # Seconds from a snapshot's produced_at to its being stored here, one value per applied snapshot.
    REPLICATION_LAG = "ReplicationLagSeconds"
    # After each reconcile: the age of the newest snapshot held of the least recently heard source.
    OLDEST_SOURCE_AGE = "OldestSourceAgeSeconds"
    # Observe mode, per group or prefix list (dimension `target`): what a reconcile would write.
    DRIFT_AUTHORIZE = "DriftRulesToAuthorize"
    DRIFT_REVOKE = "DriftRulesToRevoke"


class EmfOutcomes:
    """Counts outcomes on a Powertools Metrics object; the handler's `log_metrics` flushes them.

    A rejection is counted twice: once under the cluster's dimensions (what an alarm watches) and
    once with its reason as a dimension (what an operator breaks the count down by).
    """

    def __init__(self, metrics: Metrics, cluster: str) -> None:
        self._metrics = metrics
        self._cluster = cluster
        metrics.set_default_dimensions(cluster=cluster)

    def count(self, outcome: Outcome, value: int = 1, reason: str | None = None) -> None:
        if value <= 0:
            return
        self._metrics.add_metric(name=outcome.value, unit=MetricUnit.Count, value=value)
        if reason is not None:
            self._count_by(outcome, value, "reason", reason)

    def gauge(self, outcome: Outcome, value: int) -> None:
        self._metrics.add_metric(name=outcome.value, unit=MetricUnit.Count, value=value)

    def seconds(self, outcome: Outcome, value: float) -> None:
        self._metrics.add_metric(name=outcome.value, unit=MetricUnit.Seconds, value=value)

    def per_target(self, outcome: Outcome, target_id: str, value: int) -> None:
        self._count_by(outcome, value, "target", target_id)

    def _count_by(self, outcome: Outcome, value: int, dimension: str, dimension_value: str) -> None:
        """A count of its own with one dimension more than the batch's metrics (EMF allows one set of
        dimensions per document)."""
        with single_metric(
            name=outcome.value,
            unit=MetricUnit.Count,
            value=value,
            namespace=NAMESPACE,
            default_dimensions={"service": SERVICE, "cluster": self._cluster},
        ) as metric:
            metric.add_dimension(name=dimension, value=dimension_value)


metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
