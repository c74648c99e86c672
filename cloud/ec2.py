"""EC2 adapter: instance addresses, and a security group's inbound rules (read, authorize, revoke,
describe anew)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from schemas.errors import RuleConflictError
from schemas.inventory import InstanceAddresses
from schemas.quota import Family
from schemas.rules import ALL_TRAFFIC, Allows, DesiredRule, InboundRule, Permission, Reference, Traffic

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import IpPermissionTypeDef, PrefixListIdTypeDef, SecurityGroupRuleTypeDef

# Both mean another writer changed the group since we read it: re-read and re-plan.
CONFLICT_CODES = frozenset({"InvalidPermission.Duplicate", "InvalidPermission.NotFound"})
# Instances of every Auto Scaling group carry this tag, so one filtered call covers all members.
GROUP_TAG_FILTER = "tag:aws:autoscaling:groupName"
LIVE_STATES = ["pending", "running"]
# A group holds at most 1000 inbound rules per address family (the quota's ceiling): one call per group.
DESCRIPTIONS_PER_CALL = 2000


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

    def ingress_rules(self, group_id: str) -> list[InboundRule]:
        """The group's inbound rules, read whole (paginated); a prefix-list reference is weighed by
        its caller, who knows (or describes) the list's size."""
        rules: list[InboundRule] = []
        paginator = self._client.get_paginator("describe_security_group_rules")
        for page in paginator.paginate(Filters=[{"Name": "group-id", "Values": [group_id]}]):
            rules.extend(_inbound(rule) for rule in page["SecurityGroupRules"] if not rule.get("IsEgress"))
        return rules

    def authorize(self, group_id: str, rules: Sequence[DesiredRule]) -> None:
        """One call carrying every new rule, from addresses and prefix lists, grouped by traffic."""
        try:
            self._client.authorize_security_group_ingress(GroupId=group_id, IpPermissions=_permissions(rules))
        except ClientError as error:
            _raise_conflict(error, group_id)
            raise

    def revoke(self, group_id: str, rules: Sequence[InboundRule]) -> None:
        """Revoke by rule id: exact, and immune to the non-default-VPC rule-matching pitfalls."""
        try:
            self._client.revoke_security_group_ingress(
                GroupId=group_id, SecurityGroupRuleIds=[rule.rule_id for rule in rules]
            )
        except ClientError as error:
            _raise_conflict(error, group_id)
            raise

    def rewrite_descriptions(self, group_id: str, descriptions: Mapping[str, str]) -> None:
        """Give inbound rules (by id) new descriptions: one call for the group. The API reference
        documents no maximum for SecurityGroupRuleDescriptions, so batches are sized to the largest
        group AWS allows (1000 rules per family, two families)."""
        items = sorted(descriptions.items())
        for start in range(0, len(items), DESCRIPTIONS_PER_CALL):
            self._client.update_security_group_rule_descriptions_ingress(
                GroupId=group_id,
                SecurityGroupRuleDescriptions=[
                    {"SecurityGroupRuleId": rule_id, "Description": description}
                    for rule_id, description in items[start : start + DESCRIPTIONS_PER_CALL]
                ],
            )


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


def _inbound(rule: SecurityGroupRuleTypeDef) -> InboundRule:
    """A described rule in the form the planners build (protocol names, ports of all traffic,
    compressed IPv6), so that a rule sgmesh wrote reads back equal to the one it planned."""
    cidr = rule.get("CidrIpv4") or rule.get("CidrIpv6")
    traffic = Traffic.described(rule["IpProtocol"], rule.get("FromPort"), rule.get("ToPort"))
    allows: Allows
    if cidr:
        allows = Permission.described(traffic.protocol, traffic.from_port, traffic.to_port, cidr)
    elif "PrefixListId" in rule:
        allows = traffic.from_list(rule["PrefixListId"])
    else:
        allows = traffic.from_group(rule.get("ReferencedGroupInfo", {}).get("GroupId", ""))
    return InboundRule(rule["SecurityGroupRuleId"], allows, rule.get("Description", ""))


def _permissions(rules: Sequence[DesiredRule]) -> list[IpPermissionTypeDef]:
    by_traffic: dict[Traffic, list[DesiredRule]] = {}
    for rule in rules:
        by_traffic.setdefault(rule.allows.traffic, []).append(rule)
    return [_permission(traffic, grouped) for traffic, grouped in sorted(by_traffic.items())]


def _permission(traffic: Traffic, rules: Sequence[DesiredRule]) -> IpPermissionTypeDef:
    """One IpPermission: the traffic, and every address range or prefix list it comes from."""
    entry: IpPermissionTypeDef = {"IpProtocol": traffic.protocol}
    ranges = [(rule.allows, rule.description) for rule in rules if isinstance(rule.allows, Permission)]
    if ranges:
        entry["IpRanges"] = [
            {"CidrIp": permission.cidr, "Description": description}
            for permission, description in ranges
            if permission.family is Family.IPV4
        ]
        entry["Ipv6Ranges"] = [
            {"CidrIpv6": permission.cidr, "Description": description}
            for permission, description in ranges
            if permission.family is Family.IPV6
        ]
    lists: list[PrefixListIdTypeDef] = [
        {"PrefixListId": rule.allows.prefix_list_id, "Description": rule.description}
        for rule in rules
        if isinstance(rule.allows, Reference)
    ]
    if lists:
        entry["PrefixListIds"] = lists
    # All traffic has no ports, and an address range leaves them out; a reference names them (-1).
    if traffic.protocol != ALL_TRAFFIC or lists:
        entry["FromPort"], entry["ToPort"] = traffic.from_port, traffic.to_port
    return entry


def _raise_conflict(error: ClientError, group_id: str) -> None:
    code = error.response.get("Error", {}).get("Code", "")
    if code in CONFLICT_CODES:
        raise RuleConflictError(f"{code} on {group_id}: the group changed under us") from error
