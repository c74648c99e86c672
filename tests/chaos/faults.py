"""Fault injection into the local runtime (make chaos): failing API calls, unreachable regions,
crashing handlers and a lossy, duplicating, reordering delivery layer, deterministic for a seed."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any
from unittest import mock

import botocore.endpoint
from boto3.session import Session
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

from sgmesh.local.clock import SimClock
from sgmesh.local.esm import EventSourceMapping
from sgmesh.local.stack import RegionStack, StackSpec


class FaultKind(Enum):
    THROTTLE = "throttle"
    SERVER_ERROR = "5xx"
    READ_TIMEOUT = "read-timeout"
    CONNECT_TIMEOUT = "connect-timeout"


class HandlerCrash(BaseException):
    """The function died between two of its AWS calls (timeout, out of memory, host lost).

    A BaseException so that no `except Exception` in the product can survive it, as no code survives
    a dead Lambda sandbox; the runtime reports it as a function error.
    """


@dataclass
class ApiFault:
    kind: FaultKind
    region: str | None  # None: every region
    operation: str | None  # "ec2:AuthorizeSecurityGroupIngress"; None: every operation
    remaining: int  # attempts still to fail (each retry by botocore is an attempt)
    probability: float

    def matches(self, region: str, operation: str) -> bool:
        return self.remaining > 0 and self.region in (None, region) and self.operation in (None, operation)


@dataclass(frozen=True)
class Outage:
    region: str
    start: float
    end: float


@dataclass
class Crash:
    region: str
    function: str  # "apply", "trueup", "lifecycle"
    at_call: int  # the 0-based index of the call the function never makes


# What each wire protocol calls a throttle and a server error, with the HTTP status AWS sends.
_ERRORS: dict[str, dict[FaultKind, tuple[str, int]]] = {
    "ec2": {
        FaultKind.THROTTLE: ("RequestLimitExceeded", 503),
        FaultKind.SERVER_ERROR: ("InternalError", 500),
    },
    "query": {FaultKind.THROTTLE: ("Throttling", 400), FaultKind.SERVER_ERROR: ("InternalFailure", 500)},
    "json": {
        FaultKind.THROTTLE: ("ThrottlingException", 400),
        FaultKind.SERVER_ERROR: ("InternalServerError", 500),
    },
}


# Calls the local runtime answers itself in `before-call` (sgmesh/local/lifecycle.py).
EMULATED = frozenset({"auto-scaling:CompleteLifecycleAction"})


class _Body:
    """The `raw` of an AWSResponse: botocore reads the body through `stream()`."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def error_response(protocol: str, kind: FaultKind, url: str) -> AWSResponse:
    """An HTTP error response exactly as the service would send it, so botocore parses and retries it."""
    code, status = _ERRORS[protocol][kind]
    request_id = str(uuid.uuid4())
    message = f"injected {kind.value}"
    if protocol == "json":
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": request_id}
        body = json.dumps({"__type": code, "message": message})
    elif protocol == "ec2":
        headers = {"Content-Type": "text/xml"}
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
    else:
        headers = {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}
        body = (
            f"<ErrorResponse><Error><Type>{'Receiver' if status >= 500 else 'Sender'}</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    return AWSResponse(url, status, HTTPHeaders.from_dict(headers), _Body(body.encode()))


class Faults:
    """A ClientExtension (sgmesh.local.clients) failing the product's calls as configured, and
    counting what happened.

    Faults act in botocore's `before-send`, inside its retry loop, so the product's retry mode sees
    them as the real errors and retries them (each attempt counts); crashes act in `before-call`,
    before the request exists, as a function that died never sends it.
    """

    def __init__(self, clock: SimClock, seed: int = 0) -> None:
        self._clock = clock
        self._seed = seed
        self._random = random.Random(seed)  # noqa: S311 - reproducible faults, not secrets
        self._faults: list[ApiFault] = []
        self._outages: list[Outage] = []
        self._crashes: list[Crash] = []
        self._invocation: tuple[str, str] | None = None
        self._invocation_calls = 0
        self.calls: Counter[str] = Counter()  # logical calls per "service:Operation"
        self.attempts: Counter[str] = Counter()  # HTTP attempts, retries included
        self.injected: Counter[str] = Counter()  # faults injected per kind
        self.backoff_seconds = 0.0  # what botocore's retries would have slept

    # -- configuration -----------------------------------------------------------------------------

    def inject(
        self,
        kind: FaultKind,
        *,
        region: str | None = None,
        operation: str | None = None,
        times: int = 1,
        probability: float = 1.0,
    ) -> None:
        """Fail the next `times` matching attempts (each with `probability`)."""
        self._faults.append(ApiFault(kind, region, operation, times, probability))

    def outage(self, region: str, start: float, end: float) -> None:
        """Every call to `region` fails (connect timeout) from `start` until `end`, in simulated time."""
        self._outages.append(Outage(region, start, end))

    def crash(self, region: str, function: str, at_call: int) -> None:
        """The next invocation of `function` in `region` dies just before its call number `at_call`."""
        self._crashes.append(Crash(region, function, at_call))

    def clear(self) -> None:
        self._faults.clear()
        self._outages.clear()
        self._crashes.clear()

    def unreachable(self, region: str) -> bool:
        return any(o.region == region and o.start <= self._clock.now < o.end for o in self._outages)

    @property
    def retries(self) -> int:
        return sum(self.attempts.values()) - sum(self.calls.values())

    @contextmanager
    def invocation(self, region: str, function: str) -> Iterator[None]:
        """Brackets one invocation of a function, so crashes count that invocation's calls."""
        # Invocations nest when a test races one function against another: restore the outer one.
        outer = self._invocation, self._invocation_calls
        self._invocation, self._invocation_calls = (region, function), 0
        try:
            yield
        finally:
            self._invocation, self._invocation_calls = outer

    @contextmanager
    def instant_backoff(self) -> Iterator[None]:
        """botocore sleeps between retries; here it only adds up the delays (simulated runs stay fast)."""

        class _Time:
            def sleep(_self, seconds: float) -> None:
                self.backoff_seconds += seconds

        # botocore's retry jitter draws from the random module's own generator (bound as a default
        # argument, so it cannot be swapped): seeding it makes a run's backoff repeat exactly.
        state = random.getstate()
        random.seed(self._seed)
        try:
            with mock.patch.object(botocore.endpoint, "time", _Time()):
                yield
        finally:
            random.setstate(state)

    # -- the botocore hooks --------------------------------------------------------------------------

    def register(self, client: Any) -> None:
        region: str = client.meta.region_name
        service: str = client.meta.service_model.service_id.hyphenize()
        protocol: str = client.meta.service_model.protocol
        url: str = client.meta.endpoint_url

        def before_call(model: Any, **_: Any) -> None:
            self._maybe_crash(region)
            self.calls[f"{service}:{model.name}"] += 1

        def emulated_call(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
            # The runtime answers this call in before-call, before botocore's retry loop and before
            # the general handler above (botocore stops at the first answer): crash, count and fail
            # it here, as the one attempt it gets.
            operation = f"{service}:{model.name}"
            self._maybe_crash(region)
            self.calls[operation] += 1
            self.attempts[operation] += 1
            kind = self._fault_for(region, operation)
            if kind is None:
                return None
            _raise_timeout(kind, url)
            code, status = _ERRORS[protocol][kind]
            error = {"Code": code, "Message": f"injected {kind.value}"}
            return AWSResponse(url, status, HTTPHeaders(), None), {
                "Error": error,
                "ResponseMetadata": {"HTTPStatusCode": status},
            }

        def before_send(request: Any, event_name: str, **_: Any) -> AWSResponse | None:
            operation = f"{service}:{event_name.rsplit('.', 1)[1]}"
            self.attempts[operation] += 1
            kind = self._fault_for(region, operation)
            return None if kind is None else self._fail(kind, protocol, request.url)

        events = client.meta.events
        events.register_first(f"before-call.{service}", before_call)
        events.register(f"before-send.{service}", before_send)
        for operation in EMULATED:
            emulated_service, name = operation.split(":")
            if emulated_service == service:
                # First, so that a fault wins over the runtime's own answer.
                events.register_first(f"before-call.{service}.{name}", emulated_call)

    def _fault_for(self, region: str, operation: str) -> FaultKind | None:
        """The fault this attempt meets, if any (an unreachable region fails it as a connect timeout)."""
        if self.unreachable(region):
            self.injected["unreachable"] += 1
            return FaultKind.CONNECT_TIMEOUT
        for fault in self._faults:
            if fault.matches(region, operation) and self._random.random() < fault.probability:
                fault.remaining -= 1
                self.injected[fault.kind.value] += 1
                return fault.kind
        return None

    def _maybe_crash(self, region: str) -> None:
        if self._invocation is None or self._invocation[0] != region:
            return
        index = self._invocation_calls
        self._invocation_calls += 1
        for crash in self._crashes:
            if (crash.region, crash.function) == self._invocation and crash.at_call == index:
                self._crashes.remove(crash)
                self.injected["crash"] += 1
                raise HandlerCrash(f"{crash.function} in {region} died before its call #{index}")

    @staticmethod
    def _fail(kind: FaultKind, protocol: str, url: str) -> AWSResponse:
        _raise_timeout(kind, url)
        return error_response(protocol, kind, url)


def _raise_timeout(kind: FaultKind, url: str) -> None:
    if kind is FaultKind.READ_TIMEOUT:
        raise ReadTimeoutError(endpoint_url=url)
    if kind is FaultKind.CONNECT_TIMEOUT:
        raise ConnectTimeoutError(endpoint_url=url)


@dataclass
class DeliveryFaults:
    """What the delivery layer does to each message the first time it is received."""

    loss: float = 0.0  # probability a message is never delivered
    duplication: float = 0.0  # probability a message is also delivered 1..max_copies more times
    max_copies: int = 5
    delay: float = 0.0  # probability a message is held back up to `max_delay_seconds` (reordering)
    max_delay_seconds: int = 120
    shuffle: bool = False  # hand each batch over in a random order
    # Only messages carrying events of these types suffer the faults above (every message if empty).
    only_types: frozenset[str] = frozenset()


class FaultyEventSourceMapping(EventSourceMapping):
    """The event source mapping behind an at-least-once, unordered, lossy network."""

    def __init__(
        self,
        session: Session,
        stack: RegionStack,
        spec: StackSpec,
        clock: SimClock,
        invoke: Callable[[dict[str, Any]], Any],
        faults: DeliveryFaults,
        seed: int = 0,
    ) -> None:
        super().__init__(session, stack, spec, clock, invoke)
        self.faults = faults
        self._random = random.Random(seed)  # noqa: S311 - reproducible faults, not secrets
        self._seen: set[str] = set()
        self.lost = 0
        self.duplicated = 0
        self.delayed = 0

    def reseed(self, seed: int) -> None:
        self._random.seed(seed)

    def _receive(self) -> list[dict[str, Any]]:
        handed: list[dict[str, Any]] = []
        for message in super()._receive():
            if message["MessageId"] in self._seen:  # a redelivery: SQS's own behaviour, left alone
                handed.append(message)
                continue
            self._seen.add(message["MessageId"])
            if self.faults.only_types and _event_type(message) not in self.faults.only_types:
                handed.append(message)
                continue
            if self._random.random() < self.faults.loss:
                self.lost += 1
                self._sqs.delete_message(
                    QueueUrl=self._stack.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
                continue
            if self._random.random() < self.faults.duplication:
                self._duplicate(message)
            if self._random.random() < self.faults.delay:
                self.delayed += 1
                held = self._random.randint(1, self.faults.max_delay_seconds)
                self._invisible.append((self._clock.now + held, message["ReceiptHandle"]))
                continue
            handed.append(message)
        if self.faults.shuffle:
            self._random.shuffle(handed)
        return handed

    def _duplicate(self, message: dict[str, Any]) -> None:
        for _ in range(self._random.randint(1, self.faults.max_copies)):
            self.duplicated += 1
            copy = self._sqs.send_message(QueueUrl=self._stack.queue_url, MessageBody=message["Body"])
            self._seen.add(copy["MessageId"])  # a copy is not lost or copied again


def _event_type(message: dict[str, Any]) -> str | None:
    """The `type` of the event an SNS envelope carries (None if it carries none that parses)."""
    try:
        event = json.loads(json.loads(message["Body"])["Message"])
    except (ValueError, KeyError, TypeError):
        return None
    return event.get("type") if isinstance(event, dict) else None
