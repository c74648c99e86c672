"""The consumer's own errors: plans the configured groups or prefix lists cannot hold."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.errors import PermanentError, RuleQuotaExceededError


class ShardsFullError(RuleQuotaExceededError):
    """The desired rules do not fit in the shard groups together; nothing was changed.

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
            f"{len(self.unplaced)} address(es) fit in no group, first {self.unplaced[0]}; nothing was changed"
        )


class PrefixListConfigError(PermanentError):
    """The configured prefix lists cannot hold the desired entries; nothing was changed."""
