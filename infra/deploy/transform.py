"""The SAM transform, run offline: CloudFormation receives plain CloudFormation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import boto3
from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics  # type: ignore[import-untyped]
from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]
from samtranslator.translator.translator import Translator  # type: ignore[import-untyped]

from infra.deploy.errors import DeployError


def transform(template: Mapping[str, Any], region: str, code_uri: str, layer_uri: str) -> dict[str, Any]:
    """The SAM transform, run here and not by CloudFormation: the stack then runs exactly the template
    that the tests deploy into moto, and no CAPABILITY_AUTO_EXPAND is needed."""
    sam = json.loads(json.dumps(template))
    sam["Globals"]["Function"]["CodeUri"] = code_uri
    sam["Resources"]["DependencyLayer"]["Properties"]["ContentUri"] = layer_uri
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    session = boto3.session.Session(region_name=region)
    translator = Translator(None, Parser(), boto_session=session, metrics=metrics)
    transformed: dict[str, Any] = translator.translate(
        sam, parameter_values={}, passthrough_metadata=True, get_managed_policy_map=_no_managed_policies
    )
    # The transform counts what it did; publishing to the dummy publisher discards the counts.
    metrics.publish()
    return transformed


def _no_managed_policies() -> dict[str, str]:
    # Every function has its own role in the template, so the transform never looks up a policy name.
    raise DeployError("the template names an AWS managed policy; it must not (least privilege)")
