"""The prefix-list target: member addresses in one customer-managed list per family, referenced by rules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from aws_lambda_powertools.logging import Logger

from consumers.metrics import Outcome
from consumers.prefix_lists import DesiredReference, ListPlan, TargetPlan, desired_entries, plan_target
from consumers.reconcile import Plan
from consumers.service import GroupReview, Outcomes
from schemas.errors import RuleConflictError, RuleQuotaExceededError
from schemas.events import MembershipSnapshot
from schemas.prefix_lists import (
    EntryBatch,
    GroupRule,
    PrefixListConfigError,
    PrefixListInfo,
    PrefixListState,
    Reference,
)
from schemas.rules import DesiredRule, ExistingRule, Permission
from schemas.settings import Settings


class StoredStates(Protocol):
    def stored_states(self, cluster: str) -> list[MembershipSnapshot]: ...


class PrefixListApi(Protocol):
    def describe(self, prefix_list_ids: Iterable[str]) -> dict[str, PrefixListInfo]: ...

    def read(self, info: PrefixListInfo) -> PrefixListState: ...

    def resize(self, info: PrefixListInfo, max_entries: int) -> PrefixListInfo: ...

    def modify(self, info: PrefixListInfo, batch: EntryBatch) -> PrefixListInfo: ...

    def group_rules(self, group_id: str) -> list[GroupRule]: ...

    def authorize(self, group_id: str, references: Sequence[tuple[Reference, str]]) -> None: ...

    def revoke(self, group_id: str, rules: Sequence[GroupRule]) -> None: ...


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
        states: StoredStates,
        lists: PrefixListApi,
        outcomes: Outcomes,
        logger: Logger,
        max_conflict_retries: int = 3,
        rule_quota: Callable[[], int] | None = None,
    ) -> None:
        settings.require("security_group_ids", "ports", "prefix_list_ids")
        self._rule_quota = rule_quota or (lambda: settings.rule_quota)
        self._settings = settings
        self._states = states
        self._lists = lists
        self._outcomes = outcomes
        self._logger = logger
        self._max_conflict_retries = max_conflict_retries

    def plan(self) -> TargetPlan:
        """What a reconcile would change now; reads only."""
        settings = self._settings
        infos = self._lists.describe(settings.prefix_list_ids)
        missing = [list_id for list_id in settings.prefix_list_ids if list_id not in infos]
        if missing:
            raise PrefixListConfigError(
                f"SGMESH_PREFIX_LIST_IDS names {', '.join(missing)}: no such IPv4 or IPv6 list in "
                f"{settings.region}; nothing was changed"
            )
        lists = [self._lists.read(infos[list_id]) for list_id in settings.prefix_list_ids]
        groups = {group_id: self._lists.group_rules(group_id) for group_id in settings.security_group_ids}
        foreign_ids = {
            rule.prefix_list_id
            for rules in groups.values()
            for rule in rules
            if rule.prefix_list_id is not None and rule.prefix_list_id not in infos
        }
        return plan_target(
            cluster=settings.cluster,
            ports=settings.ports,
            quota=self._rule_quota(),
            # Read after the lists, never before: see the class docstring.
            desired=desired_entries(
                settings.cluster, self._states.stored_states(settings.cluster), settings.address
            ),
            lists=lists,
            groups=groups,
            foreign=self._lists.describe(foreign_ids),
        )

    def review(self) -> tuple[GroupReview, ...]:
        """The plan in the form `sgmesh plan` shows: each list (entries after / MaxEntries after, its
        additions and removals as the rules they amount to), then each group (its weighted count)."""
        plan = self.plan()
        return tuple(_list_review(item, self._settings) for item in plan.lists) + tuple(
            GroupReview(
                _group_plan(change.group_id, change.authorize, change.revoke), change.weight_peak, plan.quota
            )
            for change in plan.groups
        )

    def reconcile(self, causes: Sequence[dict[str, Any]] = ()) -> tuple[Plan, ...]:
        """Apply the plan, re-reading and re-planning when a list or group changed under us (bounded)."""
        for attempt in range(1, self._max_conflict_retries + 2):
            plan = self.plan()
            try:
                plan.check_quota()
            except RuleQuotaExceededError as error:
                self._logger.error(
                    "plan exceeds the rule quota (a prefix-list reference weighs its MaxEntries); "
                    "nothing was changed",
                    extra={"error": str(error)},
                )
                self._outcomes.count(Outcome.QUOTA_EXCEEDED)
                raise
            try:
                self._execute(plan, causes)
            except RuleConflictError as conflict:
                self._logger.warning(
                    "prefix list or group changed under us; re-planning",
                    extra={"attempt": attempt, "error": str(conflict)},
                )
                self._outcomes.count(Outcome.CONFLICT_RETRIED)
                continue
            return tuple(_applied_plans(plan, self._settings))
        raise RuleConflictError(
            f"prefix lists kept changing under us for {self._max_conflict_retries + 1} attempts; "
            "the record will be retried"
        )

    def _execute(self, plan: TargetPlan, causes: Sequence[dict[str, Any]]) -> None:
        # Lists first: a reference rule authorized below then admits every member at once.
        for item in plan.lists:
            info = item.state.info
            if item.grow_to is not None:
                info = self._lists.resize(info, item.grow_to)
                self._logger.info(
                    "prefix list resized",
                    extra={
                        "prefix_list_id": item.prefix_list_id,
                        "max_entries": item.grow_to,
                        "weights": {change.group_id: change.weight_after for change in plan.groups},
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
        for change in plan.groups:
            # References before revokes: per-address rules left by the security-group target go only
            # once the references admit the same members.
            if change.authorize:
                self._lists.authorize(
                    change.group_id,
                    [(desired.reference, desired.description) for desired in change.authorize],
                )
            if change.revoke:
                self._lists.revoke(change.group_id, change.revoke)
            if not change.is_empty:
                self._logger.info(
                    "security group reconciled",
                    extra={
                        "group_id": change.group_id,
                        "authorized": [str(desired.reference) for desired in change.authorize],
                        "revoked": [_rule_text(rule) for rule in change.revoke],
                        "weight": {family.value: count for family, count in change.weight_after.items()},
                        "causes": list(causes),
                    },
                )
        # Entries count as the rules they stand for here: one each, whatever the number of ports.
        authorized = sum(len(item.added) for item in plan.lists) + sum(len(c.authorize) for c in plan.groups)
        revoked = sum(len(item.removed) for item in plan.lists) + sum(len(c.revoke) for c in plan.groups)
        self._outcomes.count(Outcome.RULES_AUTHORIZED, authorized)
        self._outcomes.count(Outcome.RULES_REVOKED, revoked)


def _entry_permissions(cidr: str, settings: Settings) -> list[Permission]:
    """What an entry amounts to: the rule each port spec would give the address."""
    return [
        permission for spec in settings.ports if (permission := Permission.for_spec(spec, cidr)) is not None
    ]


def _list_plan(item: ListPlan, settings: Settings) -> Plan:
    authorize = tuple(
        DesiredRule(permission, entry.description)
        for entry in item.added
        for permission in _entry_permissions(entry.cidr, settings)
    )
    described = {entry.cidr: entry.description for entry in item.state.entries}
    revoke = tuple(
        ExistingRule(cidr, permission, described.get(cidr, ""))
        for cidr in item.removed
        for permission in _entry_permissions(cidr, settings)
    )
    return Plan(item.prefix_list_id, authorize, revoke)


def _list_review(item: ListPlan, settings: Settings) -> GroupReview:
    return GroupReview(
        _list_plan(item, settings), {item.state.info.family: item.entries_after}, item.max_entries_after
    )


def _group_plan(group_id: str, authorize: Iterable[DesiredReference], revoke: Iterable[GroupRule]) -> Plan:
    """A group's changes as rules; a reference shows its list id where a rule shows its CIDR."""
    return Plan(
        group_id,
        tuple(DesiredRule(_as_permission(desired.reference), desired.description) for desired in authorize),
        tuple(
            ExistingRule(
                rule.rule_id,
                Permission(
                    rule.protocol, rule.from_port, rule.to_port, rule.cidr or rule.prefix_list_id or ""
                ),
                rule.description,
            )
            for rule in revoke
        ),
    )


def _as_permission(reference: Reference) -> Permission:
    return Permission(reference.protocol, reference.from_port, reference.to_port, reference.prefix_list_id)


def _applied_plans(plan: TargetPlan, settings: Settings) -> list[Plan]:
    return [_list_plan(item, settings) for item in plan.lists] + [
        _group_plan(change.group_id, change.authorize, change.revoke) for change in plan.groups
    ]


def _rule_text(rule: GroupRule) -> str:
    return f"{rule.protocol}:{rule.from_port}-{rule.to_port} from {rule.cidr or rule.prefix_list_id}"
