"""The checks before any AWS call: what the stacks or the functions would refuse, said all at once."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from infra.deploy.config import ClusterConfig
from infra.deploy.errors import DeployError
from infra.deploy.template import (
    MAX_GROUPS,
    MAX_SECURITY_GROUPS,
    MAX_TOPICS,
    function_variables,
    stack_parameters,
)
from schemas.names import ARTIFACTS_STACK, stack_name, topic_region_and_account
from schemas.quota import Family
from schemas.regions import unsupported_deliveries
from schemas.rules import Traffic
from schemas.settings import AddressMode, Settings, TargetMode


def check_plan(config: ClusterConfig, own_topics: Mapping[str, str], template: Mapping[str, Any]) -> None:
    """Fail before any AWS call on anything the stacks or the functions would reject.

    `own_topics` names each region of the deploy, in order, with its own topic.
    """
    problems: list[str] = []
    regions = list(own_topics)
    missing = [region for region in regions if region not in config.regions]
    if missing:
        raise DeployError(f"no [regions.<name>] section in the deploy file for: {', '.join(missing)}")
    if stack_name(config.cluster) == ARTIFACTS_STACK:
        problems.append(
            f"cluster={config.cluster!r} would name its stack {ARTIFACTS_STACK}, the artifacts' own"
        )
    topics = [*own_topics.values(), *config.peer_topic_arns]
    if len(topics) > MAX_TOPICS:
        problems.append(f"{len(topics)} topics (regions and peer topics); a stack subscribes to {MAX_TOPICS}")
    for arn in config.peer_topic_arns:
        region, _account = topic_region_and_account(arn)
        if region not in regions:
            # SNS keeps a subscription's dead letters in the topic's region, in this account's stack there.
            problems.append(f"peer topic {arn}: deploy this account in its region {region} too")
    problems += _opt_in_problems(regions, topics)
    problems += _prefix_list_weight_problems(config)
    if config.admission_timeout_seconds >= config.lifecycle_heartbeat_timeout:
        # sgmesh completes a launch (admitted, or at its admission timeout) before the hook answers for
        # it with lifecycle_default_result: the heartbeat stays the last resort.
        problems.append(
            f"admission_timeout_seconds {config.admission_timeout_seconds} must be below "
            f"lifecycle_heartbeat_timeout {config.lifecycle_heartbeat_timeout}"
        )
    for region, own in own_topics.items():
        ordered = [own, *(arn for arn in topics if arn != own)]
        problems += [
            f"{region}: {problem}" for problem in _region_problems(config, region, ordered, template)
        ]
    if problems:
        raise DeployError("the deploy file has problems:\n  " + "\n  ".join(problems))


def _region_problems(
    config: ClusterConfig, region: str, topics: Sequence[str], template: Mapping[str, Any]
) -> list[str]:
    """What the region's stack or functions would refuse; `topics` starts with the region's own."""
    problems = []
    groups = config.groups(region)
    if not groups or len(groups) > MAX_GROUPS:
        problems.append(f"1 to {MAX_GROUPS} auto_scaling_groups, not {len(groups)}")
    if len(config.regions[region].security_groups) > MAX_SECURITY_GROUPS:
        problems.append(f"at most {MAX_SECURITY_GROUPS} security_groups")
    try:
        settings = config.settings(region, topics)
        values = stack_parameters(template, config, region, topics, _stand_in_dead_letter_arns(topics))
    except DeployError as error:
        return [*problems, str(error)]
    return problems + check_parameters(template, values) + _environment_problems(template, config, settings)


def _stand_in_dead_letter_arns(topics: Sequence[str]) -> list[str]:
    """Delivery DLQ ARNs of the right shape for topics[1:] (their real names come with their stacks)."""
    partition, account = topics[0].split(":")[1], topic_region_and_account(topics[0])[1]
    return [f"arn:{partition}:sqs:{topic_region_and_account(arn)[0]}:{account}:dlq" for arn in topics[1:]]


def _opt_in_problems(regions: Sequence[str], topics: Sequence[str]) -> list[str]:
    """Every queue subscribes to every topic: none may need SNS to forward between two opt-in regions."""
    topic_regions = [topic_region_and_account(arn)[0] for arn in topics]
    return [
        f"the topic in {topic_region} cannot deliver to the queue in {queue_region}: SNS forwards no "
        "message from one opt-in region to another (docs/deploying.md, Opt-in regions)"
        for topic_region, queue_region in unsupported_deliveries(regions, topic_regions)
    ]


# Lambda quotas, "Function resource quotas": environment variables, 4 KB for all of a function's
# variables in aggregate. Lambda measures them as the JSON object of names and values (its refusal
# quotes the "String measured").
LAMBDA_ENVIRONMENT_BYTES = 4096
# Generated, hence unknown before the stack exists: the longest CloudFormation makes them
# (<stack>-<logical id>-<13 characters>) and the longest prefix list ids.
GENERATED_SUFFIX = "X" * 13
LONGEST_PREFIX_LIST_IDS = ("pl-" + "f" * 17, "pl-" + "e" * 17)


def _environment_problems(
    template: Mapping[str, Any], config: ClusterConfig, settings: Settings
) -> list[str]:
    """Each function's environment as CloudFormation will resolve it must fit Lambda's 4 KB."""
    problems = []
    for function, given in function_environments(template, config, settings).items():
        size = environment_bytes(given)
        if size > LAMBDA_ENVIRONMENT_BYTES:
            largest = sorted(given, key=lambda variable: -len(given[variable]))[:2]
            problems.append(
                f"{function}'s environment would be {size} bytes, over Lambda's {LAMBDA_ENVIRONMENT_BYTES} "
                "(every variable's name and value): "
                + ", ".join(f"{variable} is {len(given[variable])}" for variable in largest)
                + "; use fewer or shorter port specs, or fewer topics"
            )
    return problems


def function_environments(
    template: Mapping[str, Any], config: ClusterConfig, settings: Settings
) -> dict[str, dict[str, str]]:
    """Each function's variables as CloudFormation will set them, with the longest generated names."""
    account = topic_region_and_account(settings.topic_arn or "")[1] if settings.topic_arn else "0" * 12
    generated: dict[str, object] = {
        "table_name": f"{stack_name(config.cluster)}-Table-{GENERATED_SUFFIX}",
        "admission_queue_url": f"https://sqs.{settings.region}.amazonaws.com/{account}/"
        f"{stack_name(config.cluster)}-LifecycleBuffer-{GENERATED_SUFFIX}",
    }
    if config.target is TargetMode.PREFIX_LIST:
        generated["prefix_list_ids"] = LONGEST_PREFIX_LIST_IDS
    environment = settings.model_copy(update=generated).to_env()
    return {
        function: {variable: environment.get(variable, "") for variable in variables}
        for function, variables in function_variables(template).items()
    }


def environment_bytes(variables: Mapping[str, str]) -> int:
    return len(json.dumps(variables, separators=(",", ":")).encode())


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


def check_deployed(config: ClusterConfig, deployed: Mapping[str, Mapping[str, str]]) -> None:
    """Fail, before any change, on what the deployed stacks (their parameters, by region) rule out.

    A prefix list's size belongs to the consumer once the list exists: it grows the list as members
    join. A changed prefix_list_max_entries would make CloudFormation set the size back, under the
    consumer's entries, so the deploy refuses it.
    """
    wanted = str(config.prefix_list_max_entries)
    problems = [
        f"{region}: prefix_list_max_entries = {wanted}, but its prefix lists were created with "
        f"{parameters['PrefixListMaxEntries']} and the consumer sizes them since (growing them as members "
        f"join): set it back to {parameters['PrefixListMaxEntries']}; it only sets the size of a new list"
        for region, parameters in deployed.items()
        if parameters.get("Target") == TargetMode.PREFIX_LIST.value
        and parameters.get("PrefixListMaxEntries", wanted) != wanted
    ]
    if problems:
        raise DeployError("the deploy file does not fit the deployed stacks:\n  " + "\n  ".join(problems))
