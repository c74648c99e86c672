"""The consumer's own errors: plans the configured groups or prefix lists cannot hold."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.errors import PermanentError, RuleQuotaExceededError


class ShardsFullError(RuleQuotaExceededError):
    """The desired rules do not fit in the shard groups together; the addresses that fit nowhere wait.

    `quota` is each group's quota; `room` what the groups have together for sgmesh's rules of
    `family` (the quotas less the rules sgmesh does not manage); `unplaced` the addresses that fit in
    no group. `group_id` names every shard group.
    """

    def __init__(
        self,
        group_ids: Sequence[str],
        family: str,
        rules_needed: int,
        room: int,
        quota: int,
        unplaced: Sequence[str],
    ) -> None:
        self.group_ids = tuple(group_ids)
        self.room = room
        self.unplaced = tuple(unplaced)
        super().__init__(", ".join(group_ids), family, rules_needed, quota)

    def _explain(self) -> str:
        return (
            f"sharded security groups {self.group_id} would need {self.rules_needed} {self.family} "
            f"inbound rules (each address with all its rules in one group) and have room for {self.room} "
            f"(a quota of {self.quota} per group, less the rules sgmesh does not manage): "
            f"{len(self.unplaced)} address(es) fit in no group and wait, first {self.unplaced[0]} "
            "(removals went ahead)"
        )


class ListFullError(RuleQuotaExceededError):
    """A prefix list cannot hold every member: the groups referencing it cannot hold it any bigger.

    `group_id` is the list's id, `rules_needed` the entries it would need, `quota` the most it can have.
    """

    def _explain(self) -> str:
        return (
            f"prefix list {self.group_id} would need {self.rules_needed} {self.family} entries, and the "
            f"security groups referencing it can hold it at {self.quota} (each reference weighs the "
            "list's MaxEntries against the group's quota); the entries that do not fit wait "
            "(removals went ahead)"
        )


class PrefixListConfigError(PermanentError):
    """The configured prefix lists cannot hold the desired entries; nothing was changed."""
