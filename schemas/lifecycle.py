"""Events that start a producer: EventBridge lifecycle actions and the seed's true-up request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from schemas.errors import InvalidEventError
from schemas.names import GroupName, InstanceId

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"


class Place(StrEnum):
    """Where a lifecycle action's instance comes from and goes to (`Origin`, `Destination`)."""

    EC2 = "EC2"
    GROUP = "AutoScalingGroup"
    WARM_POOL = "WarmPool"


def _known_place(value: object) -> object:
    # A place AWS adds later reads as unknown, and the transition decides: failing the event would
    # leave the hook to time out, and an ABANDON default would terminate the instance.
    return value if value in tuple(Place) else None


KnownPlace = Annotated[Place | None, BeforeValidator(_known_place)]


class _LifecycleDetail(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    group_name: GroupName = Field(alias="AutoScalingGroupName")
    transition: Literal["autoscaling:EC2_INSTANCE_LAUNCHING", "autoscaling:EC2_INSTANCE_TERMINATING"] = Field(
        alias="LifecycleTransition"
    )
    instance_id: InstanceId = Field(alias="EC2InstanceId")
    hook_name: str = Field(alias="LifecycleHookName", min_length=1, max_length=255)
    token: str = Field(alias="LifecycleActionToken", min_length=36, max_length=36)
    # Optional: an event without them (older deliveries, the seed's own) is decided by the transition.
    origin: KnownPlace = Field(default=None, alias="Origin", strict=False)
    destination: KnownPlace = Field(default=None, alias="Destination", strict=False)


class _TrueupDetail(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    group_name: GroupName = Field(alias="AutoScalingGroupName")


@dataclass(frozen=True)
class LifecycleAction:
    """An instance waiting at one of our hooks (Pending:Wait, Terminating:Wait, Warmed:Pending:Wait)."""

    group_name: str
    instance_id: str
    hook_name: str
    token: str
    launching: bool
    origin: Place | None = None
    destination: Place | None = None

    @property
    def joins_group(self) -> bool:
        """Going into service. A launch into the warm pool is not: the instance is stopped there and
        comes back later (with a new public IP) as a launch from the warm pool into the group."""
        return self.launching and self.destination in (None, Place.GROUP)


@dataclass(frozen=True)
class TrueupRequest:
    """Publish fresh snapshots of these groups (all local groups when empty)."""

    group_names: tuple[str, ...] = ()
    resync: bool = False


# The admission barrier's own message on the lifecycle buffer (delayed to the admission timeout, or sent
# by the consumer when a version became enforced everywhere), shaped like the events it travels with.
ADMISSION_CHECK_SOURCE = "sgmesh"
ADMISSION_CHECK = "sgmesh admission check"


class _AdmissionCheckDetail(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    # Lax: JSON arrays arrive as lists.
    group_names: tuple[GroupName, ...] = Field(alias="AutoScalingGroupNames", min_length=1, strict=False)
    deadline_for: tuple[InstanceId, ...] = Field(default=(), alias="DeadlineFor", strict=False)


@dataclass(frozen=True)
class AdmissionCheck:
    """Decide the waiting launches of these local groups: admitted, or still waiting; those of the
    `deadline_for` instances, whose admission timeout this check is, are timed out if not admitted."""

    group_names: tuple[str, ...]
    deadline_for: tuple[str, ...] = ()

    def event(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"AutoScalingGroupNames": list(self.group_names)}
        if self.deadline_for:
            detail["DeadlineFor"] = list(self.deadline_for)
        return {"source": ADMISSION_CHECK_SOURCE, "detail-type": ADMISSION_CHECK, "detail": detail}


ProducerRequest = LifecycleAction | TrueupRequest | AdmissionCheck


def lifecycle_event(action: LifecycleAction) -> dict[str, Any]:
    """The EventBridge event (the fields read here) of an action handed on to the lifecycle buffer."""
    detail: dict[str, Any] = {
        "AutoScalingGroupName": action.group_name,
        "LifecycleTransition": LAUNCHING if action.launching else TERMINATING,
        "EC2InstanceId": action.instance_id,
        "LifecycleHookName": action.hook_name,
        "LifecycleActionToken": action.token,
    }
    if action.origin is not None:
        detail["Origin"] = action.origin.value
    if action.destination is not None:
        detail["Destination"] = action.destination.value
    return {
        "detail-type": "EC2 Instance-launch Lifecycle Action",
        "source": "aws.autoscaling",
        "detail": detail,
    }


def parse_producer_event(event: Mapping[str, Any]) -> ProducerRequest:
    """An EventBridge lifecycle action, the seed's true-up event, or an admission check.

    The true-up shape is `{"detail": {"AutoScalingGroupName": ...}, "trueup": true}`.
    """
    try:
        if event.get("source") == ADMISSION_CHECK_SOURCE and event.get("detail-type") == ADMISSION_CHECK:
            check = _AdmissionCheckDetail.model_validate(event.get("detail", {}))
            return AdmissionCheck(check.group_names, check.deadline_for)
        if event.get("trueup") is True or event.get("resync") is True:
            detail = _TrueupDetail.model_validate(event.get("detail", {}))
            return TrueupRequest((detail.group_name,), resync=event.get("resync") is True)
        lifecycle = _LifecycleDetail.model_validate(event.get("detail", {}))
    except ValidationError as error:
        problems = "; ".join(
            f"detail.{'.'.join(str(part) for part in issue['loc'])}={issue['input']!r}: {issue['msg']}"
            for issue in error.errors(include_url=False)
        )
        raise InvalidEventError(f"not a lifecycle action or true-up event: {problems}") from None
    return LifecycleAction(
        group_name=lifecycle.group_name,
        instance_id=lifecycle.instance_id,
        hook_name=lifecycle.hook_name,
        token=lifecycle.token,
        launching=lifecycle.transition == LAUNCHING,
        origin=lifecycle.origin,
        destination=lifecycle.destination,
    )
