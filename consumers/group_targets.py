"""The `security-group` and `sharded` targets: member addresses as per-address rules in the groups."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from aws_lambda_powertools.logging import Logger

from consumers.metrics import Outcome
from consumers.reconcile import Plan, desired_rules, is_managed
from consumers.sharding import GroupPlans, Shard, plan_every_group, plan_shards
from consumers.sources import SourceBook, SourceRecords
from schemas.errors import RuleConflictError
from schemas.prefix_lists import PrefixListInfo, weigh_references
from schemas.rules import DesiredRule, InboundRule, Permission
from schemas.settings import Settings


class SecurityGroups(Protocol):
    def ingress_rules(self, group_id: str) -> list[InboundRule]: ...

    def authorize(self, group_id: str, rules: Sequence[DesiredRule]) -> None: ...

    def revoke(self, group_id: str, rules: Sequence[InboundRule]) -> None: ...


class PrefixListSizes(Protocol):
    """How big the lists a group references are: AWS counts such a rule as the list's MaxEntries."""

    def describe(self, prefix_list_ids: Iterable[str]) -> dict[str, PrefixListInfo]: ...


class Counts(Protocol):
    def count(self, outcome: Outcome, value: int = 1, reason: str | None = None) -> None: ...


def _read_group(groups: SecurityGroups, lists: PrefixListSizes, group_id: str) -> tuple[InboundRule, ...]:
    """A group's inbound rules, each weighed: a reference by its list's MaxEntries (one describe, only
    when the group references lists)."""
    rules = groups.ingress_rules(group_id)
    referenced = {rule.reference.prefix_list_id for rule in rules if rule.reference is not None}
    if not referenced:
        return tuple(rules)
    return weigh_references(rules, lists.describe(referenced))


class SecurityGroupTarget:
    """Every managed group holds every member's rules; each group's plan is one revoke, one authorize."""

    def __init__(
        self,
        *,
        settings: Settings,
        states: SourceRecords,
        groups: SecurityGroups,
        lists: PrefixListSizes,
        outcomes: Counts,
        logger: Logger,
        rule_quota: Callable[[], int],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._book = SourceBook(settings, states, clock)
        self._groups = groups
        self._lists = lists
        self._outcomes = outcomes
        self._logger = logger
        self._rule_quota = rule_quota

    def observe(self) -> GroupPlans:
        """Read the groups, then the table, and plan.

        In that order: a rule we see was authorized by a consumer that had stored its snapshot
        before, so the table read after it includes that member. Read the other way round, a
        member stored and authorized in between would look unwanted and be revoked, with no
        conflict to stop it. (Groups read one after another are not one moment either; for rules
        moving between shard groups, `ShardedTarget` checks that the moves landed.)
        """
        settings = self._settings
        quota = self._rule_quota()
        shards = [
            Shard(group_id, _read_group(self._groups, self._lists, group_id))
            for group_id in settings.security_group_ids
        ]
        sources = self._book.read()
        desired = desired_rules(settings.cluster, sources.counted, settings.ports, settings.address)
        unwanted = {
            rule.rule_id: rule.description
            for shard in shards
            for rule in shard.existing
            if is_managed(rule, settings.cluster) and rule.allows not in desired
        }
        holding, facts = self._book.hold(sources, unwanted)
        return replace(self._plan(desired, shards, quota, holding.keep), sources=facts)

    def execute(self, plan: GroupPlans, causes: Sequence[Mapping[str, Any]]) -> None:
        for step in plan.steps:
            self._apply(step, causes)
        self._book.settle(plan.sources)

    def _plan(
        self,
        desired: Mapping[Permission, DesiredRule],
        shards: Sequence[Shard],
        quota: int,
        keep: Collection[str],
    ) -> GroupPlans:
        return plan_every_group(self._settings.cluster, desired, shards, quota, keep)

    def _apply(self, step: Plan, causes: Sequence[Mapping[str, Any]]) -> None:
        # Each step is a revoke or an authorize, in the order consumers.steps chose.
        if step.revoke:
            self._groups.revoke(step.group_id, step.revoke)
            self._outcomes.count(Outcome.RULES_REVOKED, len(step.revoke))
        if step.authorize:
            self._groups.authorize(step.group_id, step.authorize)
            self._outcomes.count(Outcome.RULES_AUTHORIZED, len(step.authorize))
        if not step.is_empty:
            self._logger.info(
                "security group reconciled",
                extra={
                    "group_id": step.group_id,
                    "authorized": [f"{rule.allows} ({rule.description})" for rule in step.authorize],
                    "revoked": [f"{rule.allows} ({rule.description})" for rule in step.revoke],
                    "causes": list(causes),
                },
            )


class ShardedTarget(SecurityGroupTarget):
    """Each member address lives whole in one of the groups (rendezvous-hashed, sticky), so that the
    groups together hold more rules than one group's quota."""

    def execute(self, plan: GroupPlans, causes: Sequence[Mapping[str, Any]]) -> None:
        for step in plan.steps:
            self._apply(step, causes)
        self._check_moves_landed(plan.moved)
        self._book.settle(plan.sources)

    def _plan(
        self,
        desired: Mapping[Permission, DesiredRule],
        shards: Sequence[Shard],
        quota: int,
        keep: Collection[str],
    ) -> GroupPlans:
        return plan_shards(self._settings.cluster, desired, shards, quota, keep)

    def _check_moves_landed(self, moved: frozenset[Permission]) -> None:
        """A rule moved between shard groups must be in some group once we are done.

        Reading the groups one after another is not one moment: a consumer racing a move can see the
        moving rule in both groups and keep the copy the other is revoking. No call fails then, so
        this re-read is what turns it into a conflict, and a re-plan puts the rule back at once.
        """
        if not moved:
            return
        present = {
            rule.permission
            for group in self._settings.security_group_ids
            for rule in self._groups.ingress_rules(group)
        }
        lost = sorted(str(permission) for permission in moved - present)
        if lost:
            raise RuleConflictError(f"moved rules in no group after the move: {', '.join(lost)}")
