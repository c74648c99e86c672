"""The `prefix-list` target: member addresses in one managed list per family, referenced by rules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from aws_lambda_powertools.logging import Logger

from consumers.errors import PrefixListConfigError
from consumers.group_targets import Counts, SecurityGroups
from consumers.metrics import Outcome
from consumers.prefix_lists import ListPlan, TargetPlan, desired_entries, plan_target
from consumers.reconcile import Plan, is_marked
from consumers.review import GroupReview
from consumers.sources import SourceBook, SourceRecords
from schemas.prefix_lists import EntryBatch, PrefixListInfo, PrefixListState
from schemas.settings import Settings


class PrefixListApi(Protocol):
    def describe(self, prefix_list_ids: Iterable[str]) -> dict[str, PrefixListInfo]: ...

    def read(self, info: PrefixListInfo) -> PrefixListState: ...

    def resize(self, info: PrefixListInfo, max_entries: int) -> PrefixListInfo: ...

    def modify(self, info: PrefixListInfo, batch: EntryBatch) -> PrefixListInfo: ...


class PrefixListTarget:
    """Reads the lists first, then the desired state; writes each list at the version it read.

    That order is what keeps a member from being dropped by a racing consumer: an entry in the list
    we read was written after its snapshot was stored, so the desired state read next includes it;
    and a list changed after our read rejects our write (PrefixListVersionMismatch), so we re-read
    both and re-plan. Every group's weighted rule count is checked before anything is written.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        states: SourceRecords,
        groups: SecurityGroups,
        lists: PrefixListApi,
        outcomes: Counts,
        logger: Logger,
        rule_quota: Callable[[], int],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        settings.require("security_group_ids", "ports", "prefix_list_ids")
        self._settings = settings
        self._book = SourceBook(settings, states, clock)
        self._groups = groups
        self._lists = lists
        self._outcomes = outcomes
        self._logger = logger
        self._rule_quota = rule_quota

    def observe(self) -> TargetPlan:
        settings = self._settings
        infos = self._lists.describe(settings.prefix_list_ids)
        missing = [list_id for list_id in settings.prefix_list_ids if list_id not in infos]
        if missing:
            raise PrefixListConfigError(
                f"SGMESH_PREFIX_LIST_IDS names {', '.join(missing)}: no such IPv4 or IPv6 list in "
                f"{settings.region}; nothing was changed"
            )
        lists = [self._lists.read(infos[list_id]) for list_id in settings.prefix_list_ids]
        groups = {group_id: self._groups.ingress_rules(group_id) for group_id in settings.security_group_ids}
        quota = self._rule_quota()
        # Read after the lists, never before: see the class docstring.
        sources = self._book.read()
        desired = desired_entries(settings.cluster, sources.counted, settings.address)
        wanted = {cidr for entries in desired.values() for cidr in entries}
        # The entries and per-address rules no snapshot wants (`rule` and `entry` items apart).
        unwanted = {
            ("entry", entry.cidr): entry.description
            for state in lists
            for entry in state.entries
            if entry.cidr not in wanted
        } | {
            ("rule", rule.rule_id): rule.description
            for rules in groups.values()
            for rule in rules
            if rule.permission is not None
            and is_marked(rule, settings.cluster)
            and rule.permission.cidr not in wanted
        }
        holding, facts = self._book.hold(sources, unwanted)
        foreign_ids = {
            rule.reference.prefix_list_id
            for rules in groups.values()
            for rule in rules
            if rule.reference is not None and rule.reference.prefix_list_id not in infos
        }
        plan = plan_target(
            cluster=settings.cluster,
            ports=settings.ports,
            quota=quota,
            desired=desired,
            lists=lists,
            groups=groups,
            foreign=self._lists.describe(foreign_ids),
            keep_entries={key for kind, key in holding.keep if kind == "entry"},
            keep_rules={key for kind, key in holding.keep if kind == "rule"},
        )
        return replace(plan, sources=facts)

    def execute(self, plan: TargetPlan, causes: Sequence[Mapping[str, Any]]) -> None:
        # Lists first: a reference rule authorized below then admits every member at once.
        for item in plan.lists:
            self._write_list(item, plan.groups, causes)
        for step in plan.steps:
            self._write_group(step, causes)
        self._book.settle(plan.sources)
        # Entries count as the rules they stand for here: one each, whatever the number of ports.
        authorized = sum(len(item.added) for item in plan.lists) + sum(
            len(g.plan.authorize) for g in plan.groups
        )
        revoked = sum(len(item.removed) for item in plan.lists) + sum(len(g.plan.revoke) for g in plan.groups)
        self._outcomes.count(Outcome.RULES_AUTHORIZED, authorized)
        self._outcomes.count(Outcome.RULES_REVOKED, revoked)

    def _write_list(
        self, item: ListPlan, groups: Sequence[GroupReview], causes: Sequence[Mapping[str, Any]]
    ) -> None:
        info = item.state.info
        if item.grow_to is not None:
            info = self._lists.resize(info, item.grow_to)
            self._logger.info(
                "prefix list resized",
                extra={
                    "prefix_list_id": item.prefix_list_id,
                    "max_entries": item.grow_to,
                    "weights": {group.group_id: dict(group.rules_after) for group in groups},
                },
            )
        for batch in item.batches:
            info = self._lists.modify(info, batch)
        if item.batches:
            self._logger.info(
                "prefix list reconciled",
                extra={
                    "prefix_list_id": item.prefix_list_id,
                    "version": info.version,
                    "added": [f"{entry.cidr} ({entry.description})" for entry in item.added],
                    "removed": list(item.removed),
                    "calls": len(item.batches),
                    "causes": list(causes),
                },
            )

    def _write_group(self, step: Plan, causes: Sequence[Mapping[str, Any]]) -> None:
        # Each step is a revoke or an authorize, in the order consumers.steps chose: references before
        # the per-address rules they replace, unless the group cannot hold both.
        if step.authorize:
            self._groups.authorize(step.group_id, step.authorize)
        if step.revoke:
            self._groups.revoke(step.group_id, step.revoke)
        self._logger.info(
            "security group reconciled",
            extra={
                "group_id": step.group_id,
                "authorized": [str(rule.allows) for rule in step.authorize],
                "revoked": [str(rule.allows) for rule in step.revoke],
                "causes": list(causes),
            },
        )
