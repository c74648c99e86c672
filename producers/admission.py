"""The admission barrier on the producer side: launches wait, recorded in this region's table, until
every peer region acknowledges a version of their group that admits them, or until their timeout."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from aws_lambda_powertools.logging import Logger

from producers.metrics import ProducerOutcome
from schemas.admission import (
    AckRecord,
    Admission,
    AdmissionStatus,
    Verdict,
    missing_regions,
    newest_acknowledgements,
    verdict,
)
from schemas.lifecycle import AdmissionCheck, LifecycleAction, lifecycle_event
from schemas.settings import Settings


class AdmissionBook(Protocol):
    """This region's table (cloud.dynamodb): the waiting launches, and the acknowledgements of its
    sources its consumer recorded."""

    def record_admissions(self, cluster: str, admissions: Sequence[Admission]) -> None: ...

    def admissions(self, cluster: str, group: str | None = None) -> list[Admission]: ...

    def settle_admission(
        self, cluster: str, admission: Admission, status: AdmissionStatus, at: datetime
    ) -> bool: ...

    def acknowledgements(self, cluster: str, source: str | None = None) -> list[AckRecord]: ...


class LifecycleQueue(Protocol):
    """This region's lifecycle buffer (cloud.sqs)."""

    def send(self, event: Mapping[str, Any], delay_seconds: int = 0) -> str: ...


class Completions(Protocol):
    def complete(self, action: LifecycleAction, result: str = "CONTINUE") -> bool: ...


class Counts(Protocol):
    def count(self, outcome: ProducerOutcome, value: int = 1) -> None: ...


class AdmissionBarrier:
    """Holds launches at their hook until the mesh admits them; every completion is a call in this
    region, and a conditional write on the admission decides which invocation makes it."""

    def __init__(
        self,
        *,
        settings: Settings,
        account: str,
        book: AdmissionBook,
        queue: LifecycleQueue,
        hooks: Completions,
        outcomes: Counts,
        logger: Logger,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._account = account
        self._book = book
        self._queue = queue
        self._hooks = hooks
        self._outcomes = outcomes
        self._logger = logger
        self._clock = clock

    def forward(self, action: LifecycleAction) -> None:
        """A launch EventBridge handed straight to the function goes through the lifecycle buffer: in a
        storm, its batches cost one describe, one record of the waiting launches and one timer each,
        where one invocation per event would pay them per launch."""
        self._queue.send(lifecycle_event(action))
        self._logger.info(
            "launch handed to the lifecycle buffer, to wait there for the admission barrier",
            extra={"group": action.group_name, "instance_id": action.instance_id},
        )

    def hold(self, group: str, version: int, actions: Sequence[LifecycleAction]) -> None:
        """Record the launches as waiting for `version` (the one that admits them) or a newer one:
        before it is published, so that no acknowledgement of it can come before the record."""
        if not actions:
            return
        deadline = self._clock() + timedelta(seconds=self._settings.admission_timeout_seconds)
        self._book.record_admissions(
            self._settings.cluster,
            [
                Admission(group, action.instance_id, action.hook_name, action.token, version, deadline)
                for action in actions
            ],
        )
        self._logger.info(
            "launches wait for every peer region to admit them",
            extra={
                "group": group,
                "version": version,
                "instances": [action.instance_id for action in actions],
                "awaited": sorted(self._settings.peer_regions()),
                "deadline": deadline.isoformat(),
            },
        )

    def start_timers(self, held: Sequence[LifecycleAction]) -> None:
        """One delayed check for the launches held: their admission timeout."""
        if not held:
            return
        check = AdmissionCheck(
            tuple(sorted({action.group_name for action in held})),
            tuple(sorted({action.instance_id for action in held})),
        )
        self._queue.send(check.event(), delay_seconds=self._settings.admission_timeout_seconds)

    def settle(self, check: AdmissionCheck) -> None:
        """Complete each waiting launch of the groups that every awaited region admits (CONTINUE), and
        each one whose timeout this check is (as configured), naming the regions that did not answer."""
        deadlines = set(check.deadline_for)
        # This region's own group must admit the member too, whatever the peer list says.
        awaited = self._settings.peer_regions() | {f"{self._account}/{self._settings.region}"}
        for group in check.group_names:
            pending = [
                admission
                for admission in self._book.admissions(self._settings.cluster, group)
                if admission.status is AdmissionStatus.PENDING
            ]
            if not pending:
                continue
            acks = newest_acknowledgements(
                self._book.acknowledgements(
                    self._settings.cluster, f"{self._account}/{self._settings.region}/{group}"
                )
            )
            for admission in pending:
                decided = verdict(
                    admission, acks, awaited, deadline_passed=admission.instance_id in deadlines
                )
                if decided is Verdict.ADMIT:
                    self._admit(admission)
                elif decided is Verdict.TIME_OUT:
                    self._time_out(admission, missing_regions(admission, acks, awaited))

    def _admit(self, admission: Admission) -> None:
        if not self._settle(admission, AdmissionStatus.ADMITTED):
            return
        still_pending = self._hooks.complete(_action(admission))
        self._outcomes.count(ProducerOutcome.LAUNCHES_ADMITTED)
        self._outcomes.count(ProducerOutcome.LIFECYCLE_COMPLETED, int(still_pending))
        self._logger.info(
            "launch admitted by every peer region; lifecycle action completed"
            if still_pending
            else "launch admitted by every peer region; its action was no longer pending",
            extra={**_fields(admission), "result": "CONTINUE"},
        )

    def _time_out(self, admission: Admission, missing: Sequence[str]) -> None:
        if not self._settle(admission, AdmissionStatus.TIMED_OUT):
            return
        result = self._settings.admission_timeout_result
        still_pending = self._hooks.complete(_action(admission), result)
        self._outcomes.count(ProducerOutcome.ADMISSION_TIMEOUTS)
        self._outcomes.count(ProducerOutcome.LIFECYCLE_COMPLETED, int(still_pending))
        self._logger.warning(
            "admission timeout: regions did not acknowledge the launch in time; lifecycle action completed"
            if still_pending
            else "admission timeout: regions did not acknowledge; the action was no longer pending",
            extra={
                **_fields(admission),
                "result": result,
                "missing_regions": list(missing),
                "timeout_seconds": self._settings.admission_timeout_seconds,
            },
        )

    def _settle(self, admission: Admission, status: AdmissionStatus) -> bool:
        """Whether this invocation settles it (a conditional write): another one may have already."""
        settled = self._book.settle_admission(self._settings.cluster, admission, status, self._clock())
        if not settled:
            self._logger.info("admission already settled by another invocation", extra=_fields(admission))
        return settled


def _action(admission: Admission) -> LifecycleAction:
    return LifecycleAction(
        group_name=admission.group,
        instance_id=admission.instance_id,
        hook_name=admission.hook_name,
        token=admission.token,
        launching=True,
    )


def _fields(admission: Admission) -> dict[str, Any]:
    return {"group": admission.group, "instance_id": admission.instance_id, "version": admission.version}
