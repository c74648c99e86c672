"""Events that start a producer: EventBridge lifecycle actions and the seed's true-up request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.errors import PermanentError
from schemas.names import GroupName, InstanceId

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"


class InvalidEventError(PermanentError):
    """A producer was invoked with an event it cannot act on."""


class _LifecycleDetail(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    group_name: GroupName = Field(alias="AutoScalingGroupName")
    transition: Literal["autoscaling:EC2_INSTANCE_LAUNCHING", "autoscaling:EC2_INSTANCE_TERMINATING"] = Field(
        alias="LifecycleTransition"
    )
    instance_id: InstanceId = Field(alias="EC2InstanceId")
    hook_name: str = Field(alias="LifecycleHookName", min_length=1, max_length=255)
    token: str = Field(alias="LifecycleActionToken", min_length=36, max_length=36)


class _TrueupDetail(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    group_name: GroupName = Field(alias="AutoScalingGroupName")


@dataclass(frozen=True)
class LifecycleAction:
    """An instance waiting in Pending:Wait or Terminating:Wait for us to complete its hook."""

    group_name: str
    instance_id: str
    hook_name: str
    token: str
    launching: bool


@dataclass(frozen=True)
class TrueupRequest:
    """Publish fresh snapshots of these groups (all local groups when empty)."""

    group_names: tuple[str, ...] = ()
    resync: bool = False


def parse_producer_event(event: Mapping[str, Any]) -> LifecycleAction | TrueupRequest:
    """An EventBridge lifecycle action, or the seed's true-up event.

    The true-up shape is `{"detail": {"AutoScalingGroupName": ...}, "trueup": true}`.
    """
    try:
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
    )
