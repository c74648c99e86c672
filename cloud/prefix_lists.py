"""EC2 adapter for customer-managed prefix lists: describe, read entries, resize, modify entries."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from schemas.errors import PrefixListModifyFailedError, RuleConflictError
from schemas.prefix_lists import EntryBatch, PrefixListEntry, PrefixListInfo, PrefixListState
from schemas.quota import Family

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import ManagedPrefixListTypeDef

# Another writer changed the list since we read it, or a change of its is still being applied: re-read
# and re-plan. PrefixListVersionMismatch answers a stale CurrentVersion; IncorrectState a modify sent
# while the previous one is in progress; ConcurrentMutationLimitExceeded too many at once.
CONFLICT_CODES = frozenset({"PrefixListVersionMismatch", "IncorrectState", "ConcurrentMutationLimitExceeded"})
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
        """Version, family and MaxEntries of each list, in one paginated describe (none for no ids)."""
        ids = sorted(set(prefix_list_ids))
        if not ids:
            return {}
        found: dict[str, PrefixListInfo] = {}
        paginator = self._client.get_paginator("describe_managed_prefix_lists")
        for page in paginator.paginate(PrefixListIds=ids):
            for item in page["PrefixLists"]:
                info = _info(item)
                if info is not None:
                    found[info.prefix_list_id] = info
        return found

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
