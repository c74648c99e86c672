"""What the operator CLI does, against any mesh (local or real AWS), with the Lambdas' own services."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import uuid4

from aws_lambda_powertools.logging import Logger

from cloud.clients import ClientFactory
from cloud.dynamodb import Table
from cloud.ec2 import Ec2
from cloud.service_quotas import RuleBudgetReader
from cloud.sns import Topic
from consumers.adoption import Adoption, adoptable
from consumers.bootstrap import build as build_consumer
from consumers.reconcile import desired_rules
from consumers.review import GroupReview, ListReview, Review
from consumers.sources import SourceBook
from producers.bootstrap import build as build_producer
from producers.service import Published
from schemas.admission import AdmissionStatus, converged, newest_acknowledgements
from schemas.audit import AuditEntry
from schemas.events import CauseKind, MembershipSnapshot, Requester, ResyncReason, ResyncRequest
from schemas.lifecycle import TrueupRequest
from schemas.names import topic_region_and_account
from schemas.quota import Family, QuotaOrigin, RuleBudget
from sgmesh.doctor import Doctor
from sgmesh.meshfile import MeshFile
from sgmesh.teardown import Teardown
from sgmesh.wiring import Diagnosis

# A fallback warning goes to stderr, so that `--json` output stays parseable.
_logger = Logger(service="sgmesh-operator", logger_handler=logging.StreamHandler(sys.stderr))


@dataclass(frozen=True)
class SourceStatus:
    """A source as a region's table holds it. `age_seconds`: since it produced the newest snapshot the
    table holds (how long the region has not heard from it); `lag_seconds`: from produced to stored;
    `silent`: heard from longer ago than the mesh's `source_silence_seconds` (the alarm's threshold),
    never for a retired group, which its region stops re-publishing."""

    source: str
    applied_version: int
    members: int
    published_version: int | None
    age_seconds: float = 0.0
    lag_seconds: float = 0.0
    retired: bool = False
    silent: bool = False

    @property
    def behind(self) -> bool | None:
        """Whether the source published a version not applied here yet (None: source not in the mesh
        file). Versions are a hybrid clock, not a count: their difference says nothing."""
        return None if self.published_version is None else self.published_version > self.applied_version


@dataclass(frozen=True)
class GroupStatus:
    """A group's drift and rule budget, per address family as AWS applies the quota (a rule
    referencing a prefix list weighs the list's MaxEntries, in the list's family): `rules_used` now,
    `rules_after` once the plan is applied (families with rules only), `headroom` = quota -
    rules_after, what is left for new members' rules once the group is in sync."""

    group_id: str
    to_authorize: int
    to_revoke: int
    rules_used: dict[Family, int]
    rules_after: dict[Family, int]
    quota: int
    quota_origin: QuotaOrigin
    headroom: dict[Family, int]

    @property
    def in_sync(self) -> bool:
        return self.to_authorize == 0 and self.to_revoke == 0


@dataclass(frozen=True)
class ListStatus:
    """A prefix list's drift and size: its entries now and once the plan is applied, and its
    MaxEntries (what every rule referencing it weighs against its group's quota), now and after."""

    prefix_list_id: str
    family: Family
    to_add: int
    to_remove: int
    entries_before: int
    entries_after: int
    max_entries_before: int
    max_entries_after: int

    @property
    def in_sync(self) -> bool:
        return self.to_add == 0 and self.to_remove == 0 and self.max_entries_before == self.max_entries_after


@dataclass(frozen=True)
class RequestedResync:
    """A resync request published on a region's topic."""

    region: str
    topic_arn: str
    event_id: str
    message_id: str


@dataclass(frozen=True)
class Verdict:
    """The mesh's health in one line: `healthy` is what `sgmesh status --check` exits 0 on."""

    drifting: tuple[str, ...]
    silent: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return not self.drifting and not self.silent

    @property
    def line(self) -> str:
        if self.healthy:
            return "healthy: every region in sync, every source heard from in time"
        parts = []
        if self.drifting:
            parts.append(f"drifting: {', '.join(self.drifting)}")
        if self.silent:
            parts.append(f"silent sources: {', '.join(self.silent)}")
        return "unhealthy: " + "; ".join(parts)


def verdict(statuses: list[RegionStatus]) -> Verdict:
    """Regions with drift in any group or list, and `<region>: <source>` for every silent source."""
    drifting = tuple(
        status.region
        for status in statuses
        if not all(group.in_sync for group in status.groups) or not all(item.in_sync for item in status.lists)
    )
    silent = tuple(
        f"{status.region}: {source.source}"
        for status in statuses
        for source in status.sources
        if source.silent
    )
    return Verdict(drifting, silent)


@dataclass(frozen=True)
class GroupAdoption:
    """A group's hand-made rules that are exactly ones sgmesh wants, and whether they were taken over."""

    region: str
    group_id: str
    rules: tuple[Adoption, ...]
    applied: bool


@dataclass(frozen=True)
class Convergence:
    """One of the region's own sources across the mesh, from the acknowledgements its table keeps:
    the newest version every region of the mesh file enforces, and the regions enforcing less than
    the newest published (or nothing acknowledged yet); launches still waiting for the barrier."""

    source: str
    published_version: int | None
    enforced_everywhere: int | None
    behind: tuple[str, ...]
    waiting_launches: int


@dataclass(frozen=True)
class RegionStatus:
    region: str
    sources: tuple[SourceStatus, ...]
    groups: tuple[GroupStatus, ...]
    rule_budget: RuleBudget
    lists: tuple[ListStatus, ...] = ()
    # The region's consumer observes (the mesh file's `observe`): its drift is what it would write.
    observing: bool = False
    convergence: tuple[Convergence, ...] = ()


class Operator:
    def __init__(
        self,
        mesh: MeshFile,
        clients: ClientFactory,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.mesh = mesh
        self.clients = clients
        self._clock = clock

    def _table(self, region: str, table_name: str) -> Table:
        return Table(self.clients.dynamodb(region), table_name)

    def status(self, regions: list[str] | None = None) -> list[RegionStatus]:
        published = self._published_versions()
        return [self._region_status(region, published) for region in regions or list(self.mesh.regions)]

    def _published_versions(self) -> dict[str, int]:
        """Source key -> newest published version, read from each source region's own ledger."""
        versions: dict[str, int] = {}
        for region, entry in self.mesh.regions.items():
            account = entry.topic_arn.split(":")[4]
            for group, ledger in self._table(region, entry.table).ledger(self.mesh.cluster).items():
                if ledger.published is not None:
                    versions[f"{account}/{region}/{group}"] = ledger.published
        return versions

    def _region_status(self, region: str, published: dict[str, int]) -> RegionStatus:
        entry = self.mesh.region(region)
        states = self._table(region, entry.table).stored_states_with_times(self.mesh.cluster)
        now = self._clock()
        sources = tuple(
            self._source_status(state, stored_at, now, published.get(state.source.key))
            for state, stored_at in sorted(states, key=lambda item: item[0].source.key)
        )
        budget = self._rule_budget(region)
        review = self.plan(region, budget)
        groups = tuple(group_status(group, budget()) for group in review.groups)
        lists = tuple(list_status(item) for item in review.lists)
        return RegionStatus(
            region,
            sources,
            groups,
            budget(),
            lists,
            convergence=self._convergence(region, published),
            observing=entry.observe,
        )

    def _source_status(
        self, state: MembershipSnapshot, stored_at: datetime, now: datetime, published: int | None
    ) -> SourceStatus:
        age = max((now - state.produced_at).total_seconds(), 0.0)
        retired = state.cause.kind is CauseKind.RETIRED
        return SourceStatus(
            source=state.source.key,
            applied_version=state.version,
            members=len(state.members),
            published_version=published,
            age_seconds=age,
            lag_seconds=max((stored_at - state.produced_at).total_seconds(), 0.0),
            retired=retired,
            silent=not retired and age > self.mesh.source_silence_seconds,
        )

    def _convergence(self, region: str, published: dict[str, int]) -> tuple[Convergence, ...]:
        """Each of the region's own groups: what every region enforces of it, by its acknowledgements."""
        entry = self.mesh.region(region)
        table = self._table(region, entry.table)
        account = topic_region_and_account(entry.topic_arn)[1]
        everyone = frozenset(
            "/".join(reversed(topic_region_and_account(other.topic_arn)))
            for other in self.mesh.regions.values()
        )
        acks = table.acknowledgements(self.mesh.cluster)
        waiting = [a for a in table.admissions(self.mesh.cluster) if a.status is AdmissionStatus.PENDING]
        own = sorted(
            {*(f"{account}/{region}/{group}" for group in entry.asg_names), *(r.source for r in acks)}
        )
        statuses = []
        for source in own:
            newest = newest_acknowledgements(record for record in acks if record.source == source)
            floor = converged(newest, everyone)
            latest = published.get(source)
            statuses.append(
                Convergence(
                    source=source,
                    published_version=latest,
                    enforced_everywhere=None if floor is None else floor.version,
                    behind=tuple(
                        sorted(
                            other
                            for other in everyone
                            if other not in newest or (latest is not None and newest[other].version < latest)
                        )
                    ),
                    waiting_launches=sum(1 for a in waiting if f"{account}/{region}/{a.group}" == source),
                )
            )
        return tuple(statuses)

    def _rule_budget(self, region: str) -> RuleBudgetReader:
        settings = self.mesh.settings(region)
        return RuleBudgetReader(self.clients.service_quotas(region), settings.rule_quota, _logger)

    def plan(self, region: str, budget: RuleBudgetReader | None = None) -> Review:
        """The consumer's own plan, against the same rule budget it would check."""
        budget = budget or self._rule_budget(region)
        return build_consumer(self.mesh.settings(region), self.clients, budget).plan()

    def replay(self, region: str) -> Review:
        """Rebuild the desired state from the region's table and reconcile; returns what was done."""
        consumer = build_consumer(self.mesh.settings(region), self.clients, self._rule_budget(region))
        before = consumer.plan()
        consumer.reconcile()
        return before

    def adopt(self, region: str, *, apply: bool = False) -> list[GroupAdoption]:
        """The unmarked inbound rules of the region's groups that are exactly ones its consumer wants
        for a current member; with `apply`, each group's are given the managed description in one
        UpdateSecurityGroupRuleDescriptionsIngress call, so the consumer revokes them when the member
        leaves. Reads the table as the consumer does (the sources of the peers only)."""
        settings = self.mesh.settings(region)
        table = self._table(region, settings.table_name)
        sources = SourceBook(settings, table, lambda: datetime.now(UTC)).read()
        desired = desired_rules(settings.cluster, sources.counted, settings.ports, settings.address)
        groups = Ec2(self.clients.ec2(region))
        found: list[GroupAdoption] = []
        for group_id in settings.security_group_ids:
            rules = adoptable(groups.ingress_rules(group_id), desired)
            if apply and rules:
                groups.rewrite_descriptions(group_id, {rule.rule_id: rule.after for rule in rules})
            found.append(GroupAdoption(region, group_id, rules, applied=apply and bool(rules)))
        return found

    def trueup(self, regions: list[str] | None = None) -> list[Published]:
        published: list[Published] = []
        for region in regions or list(self.mesh.regions):
            producer = build_producer(self.mesh.settings(region), self.clients)
            published += producer.trueup(TrueupRequest())
        return published

    def resync(self, region: str) -> RequestedResync:
        """Publish a resync request on `region`'s own topic, as its consumer does when its table is
        empty: every region's consumer re-publishes its own sources, and `region` catches up."""
        topic_arn = self.mesh.region(region).topic_arn
        account = topic_region_and_account(topic_arn)[1]
        request = ResyncRequest(
            event_id=uuid4(),
            cluster=self.mesh.cluster,
            requester=Requester(account=account, region=region),
            requested_at=datetime.now(UTC),
            reason=ResyncReason.OPERATOR,
        )
        message_id = Topic(self.clients.sns(region), topic_arn).publish(request)
        return RequestedResync(region, topic_arn, str(request.event_id), message_id)

    def doctor(self, regions: list[str] | None = None, *, repair: bool = False) -> Diagnosis:
        """Every region's wiring checked against the cluster's; with `repair`, lost subscriptions
        re-created (and their attributes set back), then checked again."""
        diagnosis = Doctor(self.mesh, self.clients).diagnose(regions)
        return Doctor(self.mesh, self.clients).repair(diagnosis) if repair else diagnosis

    def teardown(self, region: str, log: Callable[[str], None]) -> None:
        """Take the region out of the mesh: retired everywhere, its groups cleaned, its stack deleted."""
        Teardown(self.mesh, self.clients, log).run(region)

    def events(self, region: str, source: str | None = None, limit: int = 50) -> list[AuditEntry]:
        entry = self.mesh.region(region)
        return self._table(region, entry.table).audit_trail(self.mesh.cluster, limit, source)


def group_status(review: GroupReview, budget: RuleBudget) -> GroupStatus:
    return GroupStatus(
        group_id=review.group_id,
        to_authorize=len(review.plan.authorize),
        to_revoke=len(review.plan.revoke),
        rules_used=review.rules_before.every_family(),
        rules_after=dict(review.rules_after),
        quota=review.quota,
        quota_origin=budget.origin,
        headroom=review.headroom,
    )


def list_status(review: ListReview) -> ListStatus:
    return ListStatus(
        prefix_list_id=review.prefix_list_id,
        family=review.family,
        to_add=len(review.added),
        to_remove=len(review.removed),
        entries_before=review.entries_before,
        entries_after=review.entries_after,
        max_entries_before=review.max_entries_before,
        max_entries_after=review.max_entries_after,
    )
