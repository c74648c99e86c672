"""moto 5.2 CloudFormation gaps that the deploy tests meet, filled in this one place."""

from __future__ import annotations

import json
from typing import Any

from moto.awslambda.models import LayerVersion
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import Stack
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.common_models import CloudFormationModel
from moto.ec2.models import ec2_backends
from moto.ec2.models.managed_prefixes import ManagedPrefixList
from moto.iam.models import ManagedPolicy
from moto.kms.models import Key


def install() -> None:
    """Make moto's in-process backends behave as CloudFormation does where the tests depend on it.

    - `Ref` to an AWS::Lambda::LayerVersion yields its ARN. moto hands the function the layer object
      instead, and then fails (HTTP 500) on every stack update that touches a function using the layer.
    - DescribeStacks returns a list parameter as it was given, comma-separated. moto returns the
      Python repr of the list it parsed it into ("['a', 'b']").
    - UpdateStack with the template and the parameter values the stack already has fails with "No
      updates are to be performed". moto compares its parsed values (lists, numbers) with the given
      strings, so it updates any stack with a list or number parameter every time.
    - AWS::EC2::PrefixList is created (moto's CloudFormation has no such resource type and refuses a
      template that reads its attributes): `PrefixListFromTemplate` below.
    - `AWS::NoValue` in a list of an AWS::IAM::ManagedPolicy's document leaves the item out, as
      CloudFormation does. moto keeps it as null, and then refuses the document ("Syntax errors").
    - An AWS::KMS::Key whose KeyPolicy changes is updated in place, as CloudFormation does (KeyPolicy
      needs no replacement). moto has no update for keys: the key drops out of the stack, and every
      later resource that reads `Fn::GetAtt Key.Arn` fails the update.
    """
    LayerVersion.physical_resource_id = property(lambda layer: layer.arn)  # type: ignore[attr-defined]
    Stack.parameter_list = property(_parameter_list)  # type: ignore[assignment,method-assign]
    CloudFormationResponse._validate_different_update = _validate_different_update  # type: ignore[method-assign]
    ManagedPolicy.create_from_cloudformation_json = _policy_without_no_values  # type: ignore[method-assign]
    Key.update_from_cloudformation_json = _key_policy_updated_in_place  # type: ignore[method-assign,assignment]
    # moto finds resource types among CloudFormationModel's subclasses, once (cached).
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()


_MOTOS_MANAGED_POLICY = ManagedPolicy.create_from_cloudformation_json


def _policy_without_no_values(
    resource_name: str, cloudformation_json: dict[str, Any], *args: Any, **kwargs: Any
) -> Any:
    properties = cloudformation_json.get("Properties", {})
    cleaned = {
        **cloudformation_json,
        "Properties": {**properties, "PolicyDocument": _drop_nulls(properties.get("PolicyDocument"))},
    }
    return _MOTOS_MANAGED_POLICY(resource_name, cleaned, *args, **kwargs)


@classmethod  # type: ignore[misc]
def _key_policy_updated_in_place(
    cls: type[Key],
    original_resource: Key,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> Key:
    policy = cloudformation_json["Properties"].get("KeyPolicy")
    if policy is not None:
        original_resource.policy = policy if isinstance(policy, str) else json.dumps(policy)
    return original_resource


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, list):
        return [_drop_nulls(item) for item in value if item is not None]
    if isinstance(value, dict):
        return {key: _drop_nulls(item) for key, item in value.items()}
    return value


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


class PrefixListFromTemplate(CloudFormationModel):
    """AWS::EC2::PrefixList as CloudFormation creates it: a customer-managed list in moto's EC2."""

    def __init__(self, prefix_list: ManagedPrefixList) -> None:
        self.prefix_list = prefix_list

    @staticmethod
    def cloudformation_name_type() -> str:
        return "PrefixListName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::EC2::PrefixList"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Arn", "PrefixListId")

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> PrefixListFromTemplate:
        properties = cloudformation_json["Properties"]
        created = ec2_backends[account_id][region_name].create_managed_prefix_list(
            address_family=properties["AddressFamily"],
            entry=properties.get("Entries", []),
            max_entries=str(properties["MaxEntries"]),
            prefix_list_name=properties["PrefixListName"],
        )
        return cls(created)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: PrefixListFromTemplate,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> PrefixListFromTemplate:
        original_resource.prefix_list.max_entries = str(cloudformation_json["Properties"]["MaxEntries"])
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        ec2_backends[account_id][region_name].delete_managed_prefix_list(resource_name)

    @property
    def physical_resource_id(self) -> str:
        return str(self.prefix_list.id)

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name == "Arn":
            return str(self.prefix_list.prefix_list_arn)
        return str(self.prefix_list.id)

    def is_created(self) -> bool:
        return True
