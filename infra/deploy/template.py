"""The stack's template: where it is, its fixed slots, and the parameters it gives the functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-untyped]

from infra.deploy.config import ClusterConfig
from schemas.names import topic_region_and_account
from schemas.regions import sns_principals

INFRA = Path(__file__).resolve().parents[1]
TEMPLATE = INFRA / "template.yaml"
ARTIFACTS_TEMPLATE = INFRA / "artifacts.yaml"
# The template's fixed slots (CloudFormation has no loops): hooks, write permissions, subscriptions.
MAX_GROUPS = 5
MAX_SECURITY_GROUPS = 5
MAX_TOPICS = 10


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    template: dict[str, Any] = yaml_parse(path.read_text())
    return template


def stack_parameters(
    template: Mapping[str, Any],
    config: ClusterConfig,
    region: str,
    topic_arns: Sequence[str],
    dead_letter_arns: Sequence[str],
) -> dict[str, str]:
    """The stack's parameter values in one region: each function setting in the text its variable
    will hold, under the parameter the template passes to that variable, then the subscriptions'
    wiring (the delivery DLQ of each topic after the first, the SNS principals), then the stack's
    options."""
    environment = config.settings(region, topic_arns).to_env()
    settings = {
        parameter: environment.get(variable, "")
        for variable, parameter in setting_parameters(template).items()
    }
    topic_regions = [topic_region_and_account(arn)[0] for arn in topic_arns]
    wiring = {
        "DeliveryDeadLetterQueueArns": ",".join(dead_letter_arns),
        "SnsServicePrincipals": ",".join(sns_principals(region, topic_regions)),
    }
    return {**settings, **wiring, **config.stack_options(region)}


def setting_parameters(template: Mapping[str, Any]) -> dict[str, str]:
    """Which parameter each function variable is set from (`!Ref P`, or `!Join [",", !Ref P]` for a
    list); variables set from the stack's own resources (table, topic, prefix lists) are not here."""
    functions = [
        resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
    ]
    found: dict[str, str] = {}
    for properties in (template["Globals"]["Function"], *functions):
        for variable, value in properties.get("Environment", {}).get("Variables", {}).items():
            parameter = _parameter_of(value)
            if parameter is not None and parameter in template["Parameters"]:
                found[variable] = parameter
    return found


def _parameter_of(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::Join" in value:
        value = value["Fn::Join"][1]
    return value.get("Ref") if isinstance(value, dict) else None


def function_variables(template: Mapping[str, Any]) -> dict[str, set[str]]:
    """The environment variables each function gets (the globals and its own), by logical id."""
    shared = set(template["Globals"]["Function"].get("Environment", {}).get("Variables", {}))
    return {
        logical_id: shared | set(resource["Properties"].get("Environment", {}).get("Variables", {}))
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
