"""The checks before any AWS call: what the stacks or the functions would refuse, said all at once."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from infra.deploy.config import ClusterConfig
from infra.deploy.errors import DeployError
from infra.deploy.names import ARTIFACTS_STACK, stack_name
from infra.deploy.template import MAX_GROUPS, MAX_SECURITY_GROUPS, MAX_TOPICS, stack_parameters
from schemas.names import topic_region_and_account
from schemas.quota import Family
from schemas.rules import Traffic
from schemas.settings import AddressMode, TargetMode


def check_plan(
    config: ClusterConfig, regions: Sequence[str], topics: Sequence[str], template: Mapping[str, Any]
) -> None:
    """Fail before any AWS call on anything the stacks or the functions would reject."""
    problems: list[str] = []
    missing = [region for region in regions if region not in config.regions]
    if missing:
        raise DeployError(f"no [regions.<name>] section in the deploy file for: {', '.join(missing)}")
    if stack_name(config.cluster) == ARTIFACTS_STACK:
        problems.append(
            f"cluster={config.cluster!r} would name its stack {ARTIFACTS_STACK}, the artifacts' own"
        )
    if len(topics) > MAX_TOPICS:
        problems.append(f"{len(topics)} topics (regions and peer topics); a stack subscribes to {MAX_TOPICS}")
    for arn in config.peer_topic_arns:
        region, _account = topic_region_and_account(arn)
        if region not in regions:
            # SNS keeps a subscription's dead letters in the topic's region, in this account's stack there.
            problems.append(f"peer topic {arn}: deploy this account in its region {region} too")
    problems += _prefix_list_weight_problems(config)
    for region in regions:
        problems += [f"{region}: {problem}" for problem in _region_problems(config, region, topics, template)]
    if problems:
        raise DeployError("the deploy file has problems:\n  " + "\n  ".join(problems))


def _region_problems(
    config: ClusterConfig, region: str, topics: Sequence[str], template: Mapping[str, Any]
) -> list[str]:
    problems = []
    groups = config.groups(region)
    if not groups or len(groups) > MAX_GROUPS:
        problems.append(f"1 to {MAX_GROUPS} auto_scaling_groups, not {len(groups)}")
    if len(config.regions[region].security_groups) > MAX_SECURITY_GROUPS:
        problems.append(f"at most {MAX_SECURITY_GROUPS} security_groups")
    try:
        values = stack_parameters(template, config, region, topics)
    except DeployError as error:
        return [*problems, str(error)]
    return problems + check_parameters(template, values)


def check_parameters(template: Mapping[str, Any], values: Mapping[str, str]) -> list[str]:
    """What CloudFormation would refuse in these values, said before any stack is touched."""
    problems = []
    for name, spec in template["Parameters"].items():
        value = values.get(name, spec.get("Default"))
        if value is None:
            problems.append(f"{name} is required")
            continue
        value = str(value)
        items = value.split(",") if spec["Type"] == "CommaDelimitedList" else [value]
        pattern = spec.get("AllowedPattern")
        if pattern and not all(re.fullmatch(pattern, item) for item in items):
            problems.append(f"{name}={value!r}: {spec.get('ConstraintDescription', 'must match ' + pattern)}")
        if "AllowedValues" in spec and value not in {str(allowed) for allowed in spec["AllowedValues"]}:
            problems.append(f"{name}={value!r}: must be one of {', '.join(map(str, spec['AllowedValues']))}")
        if spec["Type"] == "Number" and not (
            spec.get("MinValue", float("-inf")) <= float(value) <= spec.get("MaxValue", float("inf"))
        ):
            problems.append(f"{name}={value!r}: must be within {spec.get('MinValue')}-{spec.get('MaxValue')}")
    return problems


FAMILY_LABELS = {Family.IPV4: "IPv4", Family.IPV6: "IPv6"}


def _prefix_list_weight_problems(config: ClusterConfig) -> list[str]:
    """A group rule referencing a prefix list weighs its MaxEntries: the first plan must fit the quota."""
    if config.target is not TargetMode.PREFIX_LIST:
        return []
    # The lists the stack creates for the address mode (one per family it admits).
    families = {AddressMode.IPV6: (Family.IPV6,), AddressMode.DUAL_STACK: (Family.IPV4, Family.IPV6)}.get(
        config.address, (Family.IPV4,)
    )
    problems = []
    for family in families:
        references = len(Traffic.for_specs(config.ports, family))
        weight = references * config.prefix_list_max_entries
        if weight > config.rule_quota:
            problems.append(
                f"target prefix-list: {references} {FAMILY_LABELS[family]} port specs x "
                f"prefix_list_max_entries {config.prefix_list_max_entries} = {weight} rules per group, "
                f"over rule_quota {config.rule_quota}; lower prefix_list_max_entries (the consumer grows "
                "the lists as members join) or raise rule_quota and the account's quota L-0EA8095F"
            )
    return problems
