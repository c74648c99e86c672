"""Resync requests: a consumer whose table was empty asks the mesh for every source's snapshot, and
every consumer answers by re-publishing its own region's sources' newest stored snapshots."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID, uuid4

from aws_lambda_powertools.logging import Logger

from consumers.metrics import Outcome
from schemas.events import Event, MembershipSnapshot, Requester, ResyncReason, ResyncRequest
from schemas.names import topic_region_and_account
from schemas.settings import Settings

# A consumer answers at most this many times a minute: as many as a cluster has topics (10 at most),
# so that every region of a cluster recreated at once is answered at once, and a storm of requests (an
# operator repeating `sgmesh resync`, a loop) costs each consumer at most 10 publishes per own source
# per minute. A request made before the last answer is not answered again: that answer reached its
# requester, who was subscribed when it asked.
ANSWERS_PER_WINDOW = 10
ANSWER_WINDOW = timedelta(seconds=60)


class EventTopic(Protocol):
    """This region's own topic (cloud.sns)."""

    def publish(self, event: Event) -> str: ...


class StoredSnapshots(Protocol):
    def stored_states(self, cluster: str) -> list[MembershipSnapshot]: ...


class AnswerLedger(Protocol):
    """When this region's consumer last answered resync requests (its own table): the newest first."""

    def resync_answers(self, cluster: str) -> list[datetime]: ...

    def record_resync_answers(self, cluster: str, answers: Sequence[datetime]) -> None: ...


class Counts(Protocol):
    def count(self, outcome: Outcome, value: int = 1, reason: str | None = None) -> None: ...


class Resync:
    """Asks for a resync, and answers the requests of others, on this region's own topic only."""

    def __init__(
        self,
        *,
        settings: Settings,
        topic: EventTopic | None,
        states: StoredSnapshots,
        answers: AnswerLedger,
        outcomes: Counts,
        logger: Logger,
        clock: Callable[[], datetime],
        new_event_id: Callable[[], UUID] = uuid4,
    ) -> None:
        self._cluster = settings.cluster
        self._region = settings.region
        own_topic = settings.own_topic_arn()
        self._account = topic_region_and_account(own_topic)[1] if own_topic else None
        self._topic = topic if own_topic else None
        self._states = states
        self._answers = answers
        self._outcomes = outcomes
        self._logger = logger
        self._clock = clock
        self._new_event_id = new_event_id

    def ask(self, reason: ResyncReason) -> ResyncRequest | None:
        """Publish a request; a failure is logged, not raised: the true-ups catch up all the same."""
        if self._topic is None or self._account is None:
            self._logger.warning("no topic of this region is known (SGMESH_TOPIC_ARN); resync not requested")
            return None
        request = ResyncRequest(
            event_id=self._new_event_id(),
            cluster=self._cluster,
            requester=Requester(account=self._account, region=self._region),
            requested_at=self._clock(),
            reason=reason,
        )
        try:
            message_id = self._topic.publish(request)
        except Exception as error:  # asking only speeds up what the scheduled true-ups do anyway
            self._logger.error("resync request not published", extra={"error": str(error)})
            return None
        self._outcomes.count(Outcome.RESYNC_REQUESTED)
        self._logger.info(
            "resync requested",
            extra={"event_id": str(request.event_id), "reason": reason.value, "message_id": message_id},
        )
        return request

    def answer(self, requests: Sequence[ResyncRequest]) -> list[ResyncRequest]:
        """Re-publish this region's sources' newest stored snapshots for the requests, at most
        ANSWERS_PER_WINDOW times a minute; returns the requests to retry (the publish failed)."""
        if not requests:
            return []
        answers = self._answers.resync_answers(self._cluster)
        if answers and all(request.requested_at <= answers[0] for request in requests):
            self._logger.info("resync requests already answered since they were made")
            return []
        now = self._clock()
        recent = [at for at in answers if now - at < ANSWER_WINDOW]
        if len(recent) >= ANSWERS_PER_WINDOW:
            self._logger.warning(
                "resync requests dropped: answered too often in the last minute",
                extra={"answered_at": [at.isoformat() for at in recent], "requests": len(requests)},
            )
            self._outcomes.count(Outcome.RESYNC_DROPPED, len(requests))
            return []
        if self._topic is None:
            self._logger.warning("no topic of this region is known (SGMESH_TOPIC_ARN); resync not answered")
            return []
        own = sorted(
            (state for state in self._states.stored_states(self._cluster) if self._is_own(state)),
            key=lambda state: state.source.key,
        )
        try:
            for state in own:
                self._topic.publish(state)
        except Exception as error:  # SNS refused or failed: SQS gives the requests another try
            self._logger.error("resync answer not published; retried", extra={"error": str(error)})
            return list(requests)
        if own:
            self._answers.record_resync_answers(self._cluster, [now, *recent][:ANSWERS_PER_WINDOW])
        self._outcomes.count(Outcome.RESYNC_ANSWERED, len(own))
        self._logger.info(
            "resync answered",
            extra={
                "requesters": sorted({f"{r.requester.account}/{r.requester.region}" for r in requests}),
                "republished": [f"{state.source.key}@{state.version}" for state in own],
            },
        )
        return []

    def _is_own(self, state: MembershipSnapshot) -> bool:
        return (state.source.region, state.source.account) == (self._region, self._account)
