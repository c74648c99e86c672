"""The one emulated AWS call: moto lacks autoscaling CompleteLifecycleAction.

Pending lifecycle actions are registered when the harness emits a lifecycle event; the emulation
answers the product's CompleteLifecycleAction like AWS does (a ValidationError for an unknown or
already completed token) and records the parameters the product sent, for tests to assert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSResponse


@dataclass(frozen=True)
class Completion:
    region: str
    group_name: str
    hook_name: str
    token: str
    instance_id: str
    result: str


class LifecycleHookEmulator:
    def __init__(self) -> None:
        self.pending: dict[str, tuple[str, str, str, str]] = {}
        self.completions: list[Completion] = []

    def expect(self, region: str, group_name: str, hook_name: str, token: str, instance_id: str) -> None:
        self.pending[token] = (region, group_name, hook_name, instance_id)

    def register(self, client: Any) -> None:
        if client.meta.service_model.service_id.hyphenize() != "auto-scaling":
            return
        region = client.meta.region_name
        captured: dict[str, Any] = {}

        def capture(params: dict[str, Any], **_: Any) -> None:
            captured.clear()
            captured.update(params)

        def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
            token = captured.get("LifecycleActionToken", "")
            expected = self.pending.pop(token, None)
            request = (region, captured.get("AutoScalingGroupName"), captured.get("LifecycleHookName"))
            if expected is None or expected[:3] != request:
                return AWSResponse("", 400, {}, None), {
                    "Error": {"Code": "ValidationError", "Message": "No active Lifecycle Action found"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                }
            self.completions.append(
                Completion(
                    region=region,
                    group_name=captured["AutoScalingGroupName"],
                    hook_name=captured["LifecycleHookName"],
                    token=token,
                    instance_id=captured.get("InstanceId", ""),
                    result=captured["LifecycleActionResult"],
                )
            )
            return AWSResponse("", 200, {}, None), {"ResponseMetadata": {"HTTPStatusCode": 200}}

        client.meta.events.register("before-parameter-build.auto-scaling.CompleteLifecycleAction", capture)
        client.meta.events.register("before-call.auto-scaling.CompleteLifecycleAction", answer)
