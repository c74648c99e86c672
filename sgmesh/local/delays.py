"""Plays SQS's DelaySeconds in simulated time: moto delays a message by wall-clock seconds, which the
runtime's simulated time outruns, so a delayed SendMessage from the product is held here and sent
(without a delay) once the simulated clock reaches it. The call's parameters are the product's own."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from boto3.session import Session
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from sgmesh.local.clock import SimClock


@dataclass(frozen=True)
class DelayedMessage:
    region: str
    queue_url: str
    body: str
    due: float


class DelayedMessages:
    """Holds the product's delayed SendMessage calls until they are due on the simulated clock."""

    def __init__(self, session: Session, clock: SimClock) -> None:
        self._session = session
        self._clock = clock
        self.held: list[DelayedMessage] = []
        # The requests as the product made them (DelaySeconds included), for tests to assert on.
        self.requests: list[dict[str, Any]] = []

    @property
    def next_due(self) -> float | None:
        return min((message.due for message in self.held), default=None)

    def release_due(self) -> int:
        """Send every held message whose delay has passed; return how many."""
        due = [message for message in self.held if message.due <= self._clock.now]
        for message in due:
            self.held.remove(message)
            self._session.client("sqs", region_name=message.region).send_message(
                QueueUrl=message.queue_url, MessageBody=message.body
            )
        return len(due)

    def drop(self) -> list[DelayedMessage]:
        """Lose every held message (a test's fault: SQS never delivers them)."""
        dropped, self.held = self.held, []
        return dropped

    def register(self, client: Any) -> None:
        if client.meta.service_model.service_id.hyphenize() != "sqs":
            return
        region = client.meta.region_name
        request: dict[str, Any] = {}

        def capture(params: dict[str, Any], **_: Any) -> None:
            request.clear()
            request.update(params)

        def hold(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
            delay = int(request.get("DelaySeconds", 0))
            if delay <= 0:
                return None  # moto sends it now
            self.requests.append(dict(request))
            body = str(request["MessageBody"])
            self.held.append(DelayedMessage(region, str(request["QueueUrl"]), body, self._clock.now + delay))
            parsed = {
                "MessageId": str(uuid.uuid4()),
                "MD5OfMessageBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "ResponseMetadata": {"HTTPStatusCode": 200},
            }
            return AWSResponse("", 200, HTTPHeaders(), None), parsed

        client.meta.events.register("before-parameter-build.sqs.SendMessage", capture)
        client.meta.events.register("before-call.sqs.SendMessage", hold)
