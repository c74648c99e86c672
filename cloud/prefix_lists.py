"""EC2 adapter for customer-managed prefix lists, and a group's rules that reference them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from schemas.errors import RuleConflictError
from schemas.prefix_lists import (
    EntryBatch,
    GroupRule,
    PrefixListEntry,
    PrefixListInfo,
    PrefixListModifyFailedError,
    PrefixListState,
    Reference,
)
from schemas.rules import Family, Permission

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import (
        IpPermissionTypeDef,
        ManagedPrefixListTypeDef,
        SecurityGroupRuleTypeDef,
    )

# Another writer changed the list (or the group) since we read it, or a change of its is still being
# applied: re-read and re-plan. PrefixListVersionMismatch answers a stale CurrentVersion; IncorrectState
# a modify sent while the previous one is in progress; ConcurrentMutationLimitExceeded too many at once.
CONFLICT_CODES = frozenset(
    {
        "PrefixListVersionMismatch",
        "IncorrectState",
        "ConcurrentMutationLimitExceeded",
        "InvalidPermission.Duplicate",
        "InvalidPermission.NotFound",
    }
)
FAMILIES = {"IPv4": Family.IPV4, "IPv6": Family.IPV6}


class PrefixLists:
    """Reads and writes lists with optimistic concurrency: every modify carries the version it read.

    AWS applies a modify asynchronously (state modify-in-progress, then modify-complete), so after each
    write that is still in progress this waits for it, bounded, before the next write may be sent.
    """

    def __init__(
        self,
        client: EC2Client,
        *,
        sleep: Callable[[float], None] = time.sleep,
        settle_delay_seconds: float = 0.5,
        settle_attempts: int = 20,
    ) -> None:
        self._client = client
        self._sleep = sleep
        self._settle_delay_seconds = settle_delay_seconds
        self._settle_attempts = settle_attempts

    def describe(self, prefix_list_ids: Iterable[str]) -> dict[str, PrefixListInfo]:
        return describe_prefix_lists(self._client, prefix_list_ids)

    def read(self, info: PrefixListInfo) -> PrefixListState:
        """Every entry of the list at exactly the described version (paginated, 100 a page)."""
        entries: list[PrefixListEntry] = []
        paginator = self._client.get_paginator("get_managed_prefix_list_entries")
        pages = paginator.paginate(
            PrefixListId=info.prefix_list_id,
            TargetVersion=info.version,
            PaginationConfig={"PageSize": 100},
        )
        for page in pages:
            entries.extend(
                PrefixListEntry(entry["Cidr"], entry.get("Description", ""))
                for entry in page.get("Entries", [])
            )
        return PrefixListState(info, tuple(entries))

    def resize(self, info: PrefixListInfo, max_entries: int) -> PrefixListInfo:
        """Set MaxEntries, alone: AWS refuses a call that also changes entries."""
        return self._modify(info, {"MaxEntries": max_entries})

    def modify(self, info: PrefixListInfo, batch: EntryBatch) -> PrefixListInfo:
        """Apply one batch at the version read; returns the list's new version once settled."""
        changes: dict[str, Any] = {}
        if batch.add:
            changes["AddEntries"] = [
                {"Cidr": entry.cidr, "Description": entry.description} for entry in batch.add
            ]
        if batch.remove:
            changes["RemoveEntries"] = [{"Cidr": cidr} for cidr in batch.remove]
        return self._modify(info, changes)

    def group_rules(self, group_id: str) -> list[GroupRule]:
        rules: list[GroupRule] = []
        paginator = self._client.get_paginator("describe_security_group_rules")
        for page in paginator.paginate(Filters=[{"Name": "group-id", "Values": [group_id]}]):
            rules.extend(_group_rule(rule) for rule in page["SecurityGroupRules"] if not rule.get("IsEgress"))
        return rules

    def authorize(self, group_id: str, references: Sequence[tuple[Reference, str]]) -> None:
        """One call: every new reference rule, grouped by port spec, each with its description."""
        by_ports: dict[tuple[str, int, int], list[Any]] = {}
        for reference, description in references:
            key = (reference.protocol, reference.from_port, reference.to_port)
            by_ports.setdefault(key, []).append(
                {"PrefixListId": reference.prefix_list_id, "Description": description}
            )
        permissions: list[IpPermissionTypeDef] = [
            {"IpProtocol": protocol, "FromPort": from_port, "ToPort": to_port, "PrefixListIds": lists}
            for (protocol, from_port, to_port), lists in sorted(by_ports.items())
        ]
        try:
            self._client.authorize_security_group_ingress(GroupId=group_id, IpPermissions=permissions)
        except ClientError as error:
            _raise_conflict(error, group_id)
            raise

    def revoke(self, group_id: str, rules: Sequence[GroupRule]) -> None:
        try:
            self._client.revoke_security_group_ingress(
                GroupId=group_id, SecurityGroupRuleIds=[rule.rule_id for rule in rules]
            )
        except ClientError as error:
            _raise_conflict(error, group_id)
            raise

    def _modify(self, info: PrefixListInfo, changes: dict[str, Any]) -> PrefixListInfo:
        try:
            response = self._client.modify_managed_prefix_list(
                PrefixListId=info.prefix_list_id, CurrentVersion=info.version, **changes
            )
        except ClientError as error:
            _raise_conflict(error, info.prefix_list_id)
            raise
        item = response["PrefixList"]
        for _attempt in range(self._settle_attempts):
            state = item.get("State", "")
            if state.endswith("-failed"):
                raise PrefixListModifyFailedError(
                    f"prefix list {info.prefix_list_id} is {state}: "
                    f"{item.get('StateMessage', 'no reason given')}"
                )
            after = _info(item)
            if after is not None and not state.endswith("-in-progress"):
                return after
            self._sleep(self._settle_delay_seconds)
            (item,) = self._client.describe_managed_prefix_lists(PrefixListIds=[info.prefix_list_id])[
                "PrefixLists"
            ]
        raise RuleConflictError(f"prefix list {info.prefix_list_id} did not settle after a modify")


def describe_prefix_lists(client: EC2Client, prefix_list_ids: Iterable[str]) -> dict[str, PrefixListInfo]:
    """Version, family and MaxEntries of each list, in one paginated describe."""
    ids = sorted(set(prefix_list_ids))
    if not ids:
        return {}
    found: dict[str, PrefixListInfo] = {}
    paginator = client.get_paginator("describe_managed_prefix_lists")
    for page in paginator.paginate(PrefixListIds=ids):
        for item in page["PrefixLists"]:
            info = _info(item)
            if info is not None:
                found[info.prefix_list_id] = info
    return found


def _group_rule(rule: SecurityGroupRuleTypeDef) -> GroupRule:
    cidr = rule.get("CidrIpv4") or rule.get("CidrIpv6")
    # The same normal form as a per-address rule (protocol names, ports of all traffic), so that a
    # reference the target wrote reads back equal to the one it plans.
    normal = Permission.described(
        rule["IpProtocol"], rule.get("FromPort"), rule.get("ToPort"), cidr or "192.0.2.1/32"
    )
    return GroupRule(
        rule_id=rule["SecurityGroupRuleId"],
        protocol=normal.protocol,
        from_port=normal.from_port,
        to_port=normal.to_port,
        description=rule.get("Description", ""),
        cidr=normal.cidr if cidr else None,
        prefix_list_id=rule.get("PrefixListId"),
    )


def _info(item: ManagedPrefixListTypeDef) -> PrefixListInfo | None:
    family = FAMILIES.get(item.get("AddressFamily", ""))
    if family is None or "PrefixListId" not in item:
        return None
    return PrefixListInfo(
        prefix_list_id=item["PrefixListId"],
        family=family,
        version=item.get("Version", 0),
        # AWS-managed lists describe no MaxEntries; a reference to one is weighed as a single rule.
        max_entries=item.get("MaxEntries", 1),
        state=item.get("State", ""),
    )


def _raise_conflict(error: ClientError, resource_id: str) -> None:
    code = error.response.get("Error", {}).get("Code", "")
    if code in CONFLICT_CODES:
        raise RuleConflictError(f"{code} on {resource_id}: it changed under us") from error
