"""moto 5.2 CloudFormation gaps that the deploy tests meet, filled in this one place."""

from __future__ import annotations

from typing import Any

from moto.awslambda.models import LayerVersion
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import Stack
from moto.cloudformation.responses import CloudFormationResponse


def install() -> None:
    """Make moto's in-process backends behave as CloudFormation does where the tests depend on it.

    - `Ref` to an AWS::Lambda::LayerVersion yields its ARN. moto hands the function the layer object
      instead, and then fails (HTTP 500) on every stack update that touches a function using the layer.
    - DescribeStacks returns a list parameter as it was given, comma-separated. moto returns the
      Python repr of the list it parsed it into ("['a', 'b']").
    - UpdateStack with the template and the parameter values the stack already has fails with "No
      updates are to be performed". moto compares its parsed values (lists, numbers) with the given
      strings, so it updates any stack with a list or number parameter every time.
    """
    LayerVersion.physical_resource_id = property(lambda layer: layer.arn)  # type: ignore[attr-defined]
    Stack.parameter_list = property(_parameter_list)  # type: ignore[assignment,method-assign]
    CloudFormationResponse._validate_different_update = _validate_different_update  # type: ignore[method-assign]


def _parameter_list(stack: Stack) -> list[dict[str, Any]]:
    return [
        {"ParameterKey": key, "ParameterValue": _as_given(value)}
        for key, value in stack.resource_map.resolved_parameters.items()
    ]


def _as_given(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _validate_different_update(
    self: CloudFormationResponse,
    incoming_params: list[dict[str, Any]] | None,
    stack_body: str,
    old_stack: Stack,
) -> None:
    incoming = {item["ParameterKey"]: item["ParameterValue"] for item in incoming_params or []}
    current = {item["ParameterKey"]: item["ParameterValue"] for item in _parameter_list(old_stack)}
    if old_stack.template == stack_body and all(current.get(key) == value for key, value in incoming.items()):
        raise ValidationError(old_stack.name, message="No updates are to be performed.")
