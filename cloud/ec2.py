"""EC2 adapter: instance addresses and a security group's inbound rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from cloud.prefix_lists import describe_prefix_lists
from schemas.errors import RuleConflictError
from schemas.inventory import InstanceAddresses
from schemas.rules import ALL_TRAFFIC, DesiredRule, ExistingRule, Family, Permission

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import (
        IpPermissionTypeDef,
        IpRangeTypeDef,
        Ipv6RangeTypeDef,
        SecurityGroupRuleTypeDef,
    )

# Both mean another writer changed the group since we read it: re-read and re-plan.
CONFLICT_CODES = frozenset({"InvalidPermission.Duplicate", "InvalidPermission.NotFound"})
# Instances of every Auto Scaling group carry this tag, so one filtered call covers all members.
GROUP_TAG_FILTER = "tag:aws:autoscaling:groupName"
LIVE_STATES = ["pending", "running"]


class Ec2:
    def __init__(self, client: EC2Client) -> None:
        self._client = client

    def instance_addresses(self, group_names: Sequence[str]) -> dict[str, InstanceAddresses]:
        """Addresses of every live instance of the named groups, in one paginated describe."""
        found: dict[str, InstanceAddresses] = {}
        paginator = self._client.get_paginator("describe_instances")
        pages = paginator.paginate(
            Filters=[
                {"Name": GROUP_TAG_FILTER, "Values": list(group_names)},
                {"Name": "instance-state-name", "Values": LIVE_STATES},
            ],
            PaginationConfig={"PageSize": 1000},
        )
        for page in pages:
            for reservation in page["Reservations"]:
                for instance in reservation.get("Instances", []):
                    found[instance["InstanceId"]] = _addresses(instance)
        return found

    def ingress_rules(self, group_id: str) -> list[ExistingRule]:
        """The group's inbound rules; a prefix-list reference weighs the list's MaxEntries (one more
        describe, only when the group has references)."""
        rules: list[ExistingRule] = []
        lists: dict[str, str] = {}
        paginator = self._client.get_paginator("describe_security_group_rules")
        for page in paginator.paginate(Filters=[{"Name": "group-id", "Values": [group_id]}]):
            for rule in page["SecurityGroupRules"]:
                if not rule.get("IsEgress"):
                    rules.append(_existing(rule))
                    if rule.get("PrefixListId"):
                        lists[rule["SecurityGroupRuleId"]] = rule["PrefixListId"]
        if not lists:
            return rules
        sizes = describe_prefix_lists(self._client, lists.values())
        return [
            replace(rule, weight=sizes[lists[rule.rule_id]].max_entries) if rule.rule_id in lists else rule
            for rule in rules
        ]

    def authorize(self, group_id: str, rules: Sequence[DesiredRule]) -> None:
        """One call carrying every new range, grouped by port spec as AWS expects."""
        try:
            self._client.authorize_security_group_ingress(GroupId=group_id, IpPermissions=_permissions(rules))
        except ClientError as error:
            _raise_conflict(error, group_id)
            raise

    def revoke(self, group_id: str, rules: Sequence[ExistingRule]) -> None:
        """Revoke by rule id: exact, and immune to the non-default-VPC rule-matching pitfalls."""
        try:
            self._client.revoke_security_group_ingress(
                GroupId=group_id, SecurityGroupRuleIds=[rule.rule_id for rule in rules]
            )
        except ClientError as error:
            _raise_conflict(error, group_id)
            raise


def _addresses(instance: Any) -> InstanceAddresses:
    ipv6 = tuple(
        address["Ipv6Address"]
        for interface in instance.get("NetworkInterfaces", [])
        for address in interface.get("Ipv6Addresses", [])
        if "Ipv6Address" in address
    )
    return InstanceAddresses(
        instance_id=instance["InstanceId"],
        public_ipv4=instance.get("PublicIpAddress"),
        private_ipv4=instance.get("PrivateIpAddress"),
        ipv6=ipv6,
    )


def _existing(rule: SecurityGroupRuleTypeDef) -> ExistingRule:
    cidr = rule.get("CidrIpv4") or rule.get("CidrIpv6")
    permission = (
        Permission.described(rule["IpProtocol"], rule.get("FromPort"), rule.get("ToPort"), cidr)
        if cidr
        else None
    )
    return ExistingRule(rule["SecurityGroupRuleId"], permission, rule.get("Description", ""))


def _permissions(rules: Sequence[DesiredRule]) -> list[IpPermissionTypeDef]:
    ipv4: dict[tuple[str, int, int], list[IpRangeTypeDef]] = {}
    ipv6: dict[tuple[str, int, int], list[Ipv6RangeTypeDef]] = {}
    for rule in rules:
        permission = rule.permission
        key = (permission.protocol, permission.from_port, permission.to_port)
        if permission.family is Family.IPV6:
            ipv6.setdefault(key, []).append({"CidrIpv6": permission.cidr, "Description": rule.description})
        else:
            ipv4.setdefault(key, []).append({"CidrIp": permission.cidr, "Description": rule.description})
    permissions: list[IpPermissionTypeDef] = []
    for key in sorted(ipv4.keys() | ipv6.keys()):
        protocol, from_port, to_port = key
        entry: IpPermissionTypeDef = {
            "IpProtocol": protocol,
            "IpRanges": ipv4.get(key, []),
            "Ipv6Ranges": ipv6.get(key, []),
        }
        # All traffic has no ports; for ICMP they carry the type and code (-1 = any).
        if protocol != ALL_TRAFFIC:
            entry["FromPort"], entry["ToPort"] = from_port, to_port
        permissions.append(entry)
    return permissions


def _raise_conflict(error: ClientError, group_id: str) -> None:
    code = error.response.get("Error", {}).get("Code", "")
    if code in CONFLICT_CODES:
        raise RuleConflictError(f"{code} on {group_id}: the group changed under us") from error
