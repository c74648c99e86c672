"""In-memory fakes of the service ports, with the AWS semantics the services rely on, plus event builders."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from aws_lambda_powertools.logging import Logger

from consumers.acknowledgements import AcknowledgementBook, Acknowledgements, LifecycleQueue
from consumers.bootstrap import target
from consumers.group_targets import SecurityGroups
from consumers.metrics import Outcome
from consumers.prefix_list_target import PrefixListApi
from consumers.resync import AnswerLedger, EventTopic, Resync
from consumers.service import ApplyService, AuditLog, Outcomes, SourceStates, VerifyEnvelope
from consumers.signatures import SignatureVerifier
from consumers.sources import SourceRecords
from producers.admission import AdmissionBook, Completions
from producers.metrics import ProducerOutcome
from producers.service import (
    AddressDirectory,
    GroupDirectory,
    LifecycleHooks,
    ProducerOutcomes,
    SnapshotTopic,
    VersionLedger,
)
from schemas.admission import AckRecord, Admission, AdmissionStatus
from schemas.audit import AuditEntry
from schemas.errors import RuleConflictError
from schemas.events import (
    MAX_MEMBERS,
    Cause,
    CauseKind,
    Event,
    Member,
    MembershipSnapshot,
    Source,
    parse_event,
    parse_snapshot,
)
from schemas.inventory import GroupInstance, InstanceAddresses
from schemas.ledger import LedgerEntry, Stored
from schemas.lifecycle import LifecycleAction
from schemas.prefix_lists import EntryBatch, PrefixListEntry, PrefixListInfo, PrefixListState
from schemas.quota import Family
from schemas.rules import Allows, DesiredRule, InboundRule, Permission
from schemas.settings import Settings
from tests.support.sns_signing import certificate_url_for, sns_signer

# --- consumer ports (consumers/service.py, consumers/group_targets.py, consumers/prefix_list_target.py) --


class FakeSourceStates(SourceStates, SourceRecords, AnswerLedger):
    """The consumer's table: a put conditioned on `attribute_not_exists(pk) OR version < :v`, and the
    consumer's holds (a hold starts once: `attribute_not_exists(pk)`).

    Snapshots are stored as JSON and parsed on read, as the DynamoDB adapter does.
    """

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], tuple[int, str]] = {}
        self.writes = 0
        # Run once each, in order, right after a read has been taken: another writer acting then.
        self.after_read: list[Callable[[], object]] = []
        self.hold_records: dict[tuple[str, str], datetime] = {}
        self.hold_reads = 0
        self.answers: dict[str, list[datetime]] = {}

    def store_if_newer(self, snapshot: MembershipSnapshot) -> Stored:
        key = (snapshot.cluster, snapshot.source.key)
        stored = self.items.get(key)
        if stored is not None and not stored[0] < snapshot.version:
            return Stored.STALE
        self.items[key] = (snapshot.version, snapshot.to_json())
        self.writes += 1
        return Stored.FIRST if stored is None else Stored.NEWER

    def stored_states(self, cluster: str) -> list[MembershipSnapshot]:
        states = [
            parse_snapshot(raw) for (owner, _source), (_v, raw) in self.items.items() if owner == cluster
        ]
        if self.after_read:
            self.after_read.pop(0)()
        return states

    def versions(self, cluster: str) -> dict[str, int]:
        return {
            source: version for (owner, source), (version, _raw) in self.items.items() if owner == cluster
        }

    def forget_states(self, cluster: str, source_keys: Collection[str]) -> None:
        for source in source_keys:
            self.items.pop((cluster, source), None)

    def holds(self, cluster: str) -> dict[str, datetime]:
        self.hold_reads += 1
        return {label: since for (owner, label), since in self.hold_records.items() if owner == cluster}

    def record_holds(
        self,
        cluster: str,
        *,
        start: Collection[str],
        clear: Collection[str],
        at: datetime,
        keep_for: timedelta,
    ) -> None:
        for label in start:
            self.hold_records.setdefault((cluster, label), at)
        for label in clear:
            self.hold_records.pop((cluster, label), None)

    def resync_answers(self, cluster: str) -> list[datetime]:
        return sorted(self.answers.get(cluster, []), reverse=True)

    def record_resync_answers(self, cluster: str, answers: Sequence[datetime]) -> None:
        self.answers[cluster] = list(answers)


class FakeEventTopic(EventTopic):
    """This region's topic, as the consumer publishes to it: records each event; `failure` makes every
    publish (of the `failing` types, if any are named) raise it."""

    def __init__(self) -> None:
        self.published: list[Event] = []
        self.failure: Exception | None = None
        self.failing: set[str] = set()

    def publish(self, event: Event) -> str:
        if self.failure is not None and (not self.failing or event.type in self.failing):
            raise self.failure
        self.published.append(parse_event(event.to_json()))
        return f"message-{len(self.published)}"


class FakeAuditLog(AuditLog):
    """The audit trail: keeps what was recorded, or fails every write when `failure` is set."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []
        self.failure: Exception | None = None

    def record(self, cluster: str, entries: Sequence[AuditEntry], retention_days: int) -> None:
        if self.failure is not None:
            raise self.failure
        self.entries.extend(entries)


class FakeOutcomes(Outcomes):
    """Keeps every count, by outcome and by (outcome, reason)."""

    def __init__(self) -> None:
        self.counts: Counter[Outcome] = Counter()
        self.reasons: Counter[tuple[Outcome, str]] = Counter()
        self.gauges: dict[Outcome, int] = {}
        self.durations: dict[Outcome, list[float]] = {}
        self.targets: dict[tuple[Outcome, str], int] = {}

    def count(self, outcome: Outcome, value: int = 1, reason: str | None = None) -> None:
        self.counts[outcome] += value
        if reason is not None:
            self.reasons[outcome, reason] += value

    def gauge(self, outcome: Outcome, value: int) -> None:
        self.gauges[outcome] = value

    def seconds(self, outcome: Outcome, value: float) -> None:
        self.durations.setdefault(outcome, []).append(value)

    def per_target(self, outcome: Outcome, target_id: str, value: int) -> None:
        self.targets[outcome, target_id] = value


class FakeAcknowledgementBook(AcknowledgementBook):
    """The acknowledgement records: a put conditioned on `attribute_not_exists(pk) OR version < :v`."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str, str], AckRecord] = {}
        self.writes = 0

    def acknowledgements(self, cluster: str, source: str | None = None) -> list[AckRecord]:
        return [
            record
            for (owner, of, _region), record in sorted(self.records.items())
            if owner == cluster and source in (None, of)
        ]

    def record_acknowledgement(self, cluster: str, record: AckRecord) -> bool:
        key = (cluster, record.source, record.region)
        held = self.records.get(key)
        if held is not None and not held.version < record.version:
            return False
        self.records[key] = record
        self.writes += 1
        return True


class FakeLifecycleQueue(LifecycleQueue):
    """The lifecycle buffer: keeps each event sent, with its delay."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send(self, event: Mapping[str, Any], delay_seconds: int = 0) -> str:
        self.sent.append((dict(event), delay_seconds))
        return f"sqs-message-{len(self.sent)}"


class RulesPerGroupLimitExceeded(Exception):
    """What EC2 answers when an authorize would pass the quota (the service must never get here)."""


# Called at the start of a mutating call with (operation, group id, permissions of the request):
# another writer acting between the service's read and its write.
Interference = Callable[[str, str, tuple[Permission, ...]], None]


class FakeSecurityGroups(SecurityGroups):
    """Security groups as EC2 keeps them: atomic calls, Duplicate / NotFound as RuleConflictError.

    A rule is read back as the adapter reads it: unweighed (a reference weighs one in each family
    until its list is described), and that is what the quota check here counts.
    """

    def __init__(self, *group_ids: str, quota: int = 60) -> None:
        self.groups: dict[str, dict[str, InboundRule]] = {group_id: {} for group_id in group_ids}
        self.quota = quota
        # Every authorize/revoke the service made, failed ones included: (operation, group id).
        self.calls: list[tuple[str, str]] = []
        # One entry is used up per mutating call, in order.
        self.interference: list[Interference] = []
        self._rule_ids = count(1)

    @property
    def mutating_calls(self) -> int:
        return len(self.calls)

    def add_rule(self, group_id: str, allows: Allows, description: str = "") -> str:
        """A rule written by someone else: an operator, another cluster, another consumer."""
        if allows in self._allowed(group_id):
            raise RuleConflictError(f"InvalidPermission.Duplicate on {group_id}: {allows}")
        rule_id = f"sgr-{next(self._rule_ids):017x}"
        self._group(group_id)[rule_id] = InboundRule(rule_id, allows, description)
        return rule_id

    def remove_rule(self, group_id: str, rule_id: str) -> None:
        del self._group(group_id)[rule_id]

    def rules(self, group_id: str) -> list[InboundRule]:
        return list(self._group(group_id).values())

    def ingress_rules(self, group_id: str) -> list[InboundRule]:
        return self.rules(group_id)

    def authorize(self, group_id: str, rules: Sequence[DesiredRule]) -> None:
        self._mutating(
            "authorize", group_id, tuple(p for rule in rules if (p := rule.permission) is not None)
        )
        allowed = [rule.allows for rule in rules]
        if len(set(allowed)) != len(allowed):
            raise ValueError(f"InvalidParameterValue: a rule appears twice in one request: {allowed}")
        duplicates = [allows for allows in allowed if allows in self._allowed(group_id)]
        if duplicates:
            raise RuleConflictError(f"InvalidPermission.Duplicate on {group_id}: {duplicates[0]}")
        held: Counter[Family] = Counter()
        for existing in self.rules(group_id):
            held.update(existing.weight)
        added: Counter[Family] = Counter()
        for new in rules:
            added.update(new.weight)
        if any(held[family] + count > self.quota for family, count in added.items()):
            raise RulesPerGroupLimitExceeded(f"{group_id}: {dict(held + added)} over {self.quota}")
        for rule in rules:
            rule_id = f"sgr-{next(self._rule_ids):017x}"
            self._group(group_id)[rule_id] = InboundRule(rule_id, rule.allows, rule.description)

    def revoke(self, group_id: str, rules: Sequence[InboundRule]) -> None:
        self._mutating("revoke", group_id, tuple(p for rule in rules if (p := rule.permission) is not None))
        group = self._group(group_id)
        missing = [rule.rule_id for rule in rules if rule.rule_id not in group]
        if missing:
            raise RuleConflictError(f"InvalidPermission.NotFound on {group_id}: {missing[0]}")
        for rule in rules:
            del group[rule.rule_id]

    def _mutating(self, operation: str, group_id: str, permissions: tuple[Permission, ...]) -> None:
        self._group(group_id)
        self.calls.append((operation, group_id))
        if self.interference:
            self.interference.pop(0)(operation, group_id, permissions)

    def _group(self, group_id: str) -> dict[str, InboundRule]:
        if group_id not in self.groups:
            raise LookupError(f"InvalidGroup.NotFound: {group_id}")
        return self.groups[group_id]

    def _allowed(self, group_id: str) -> set[Allows]:
        return {rule.allows for rule in self.rules(group_id)}


class FakePrefixLists(PrefixListApi):
    """Customer-managed prefix lists as EC2 keeps them: every version's entries stay readable, a write
    at a version that is no longer current fails (PrefixListVersionMismatch, a conflict), entries
    never pass MaxEntries, a resize keeps the version and an entry change makes the next one."""

    def __init__(self, *lists: PrefixListInfo) -> None:
        self.lists = {info.prefix_list_id: info for info in lists}
        self.versions: dict[str, dict[int, dict[str, PrefixListEntry]]] = {
            info.prefix_list_id: {info.version: {}} for info in lists
        }
        self.writes: list[str] = []

    def entries(self, prefix_list_id: str) -> dict[str, PrefixListEntry]:
        """The list's entries at its current version."""
        return self.versions[prefix_list_id][self.lists[prefix_list_id].version]

    def describe(self, prefix_list_ids: Iterable[str]) -> dict[str, PrefixListInfo]:
        return {list_id: self.lists[list_id] for list_id in prefix_list_ids if list_id in self.lists}

    def read(self, info: PrefixListInfo) -> PrefixListState:
        return PrefixListState(info, tuple(sorted(self.versions[info.prefix_list_id][info.version].values())))

    def resize(self, info: PrefixListInfo, max_entries: int) -> PrefixListInfo:
        current = self._current(info, f"resize {max_entries}")
        if max_entries < len(self.entries(info.prefix_list_id)):
            raise ValueError(f"InvalidParameterValue: {max_entries} is less than the entries in the list")
        self.lists[info.prefix_list_id] = replace(current, max_entries=max_entries)
        return self.lists[info.prefix_list_id]

    def modify(self, info: PrefixListInfo, batch: EntryBatch) -> PrefixListInfo:
        current = self._current(info, f"modify +{len(batch.add)} -{len(batch.remove)}")
        entries = dict(self.entries(info.prefix_list_id))
        for cidr in batch.remove:
            del entries[cidr]
        entries.update({entry.cidr: entry for entry in batch.add})
        if len(entries) > current.max_entries:
            raise ValueError(f"PrefixListMaxEntriesExceeded: {len(entries)} over {current.max_entries}")
        self.lists[info.prefix_list_id] = replace(current, version=current.version + 1)
        self.versions[info.prefix_list_id][current.version + 1] = entries
        return self.lists[info.prefix_list_id]

    def _current(self, info: PrefixListInfo, write: str) -> PrefixListInfo:
        current = self.lists[info.prefix_list_id]
        if info.version != current.version:
            raise RuleConflictError(f"PrefixListVersionMismatch on {info.prefix_list_id}")
        self.writes.append(write)
        return current


# --- producer ports (producers/service.py) ---------------------------------------------------------


class FakeGroupDirectory(GroupDirectory):
    """Auto Scaling groups by name; a missing group is absent from the answer, as in the adapter."""

    def __init__(self, groups: dict[str, list[GroupInstance]], journal: list[str] | None = None) -> None:
        self.groups = groups
        self.journal = journal if journal is not None else []
        self.describes: list[tuple[str, ...]] = []
        # One entry is used up per describe: something that happens while the group is being described.
        self.during_describe: list[Callable[[], None]] = []

    def group_instances(self, names: Sequence[str]) -> dict[str, tuple[GroupInstance, ...]]:
        self.describes.append(tuple(names))
        self.journal.append(f"describe {','.join(names)}")
        if self.during_describe:
            self.during_describe.pop(0)()
        return {name: tuple(self.groups[name]) for name in names if name in self.groups}


class FakeAddressDirectory(AddressDirectory):
    """Every known instance's addresses; a superset of the asked groups' instances is harmless."""

    def __init__(self, addresses: Iterable[InstanceAddresses]) -> None:
        self.addresses = {known.instance_id: known for known in addresses}

    def instance_addresses(self, group_names: Sequence[str]) -> dict[str, InstanceAddresses]:
        return dict(self.addresses)


class FakeVersionLedger(VersionLedger):
    """The producer's ledger: claims conditioned on `attribute_not_exists(pk) OR version = :expected`,
    the published version (with its membership digest) only ever moving forward, and the time of a
    group's first retirement, cleared when it is published as a source again."""

    def __init__(self, journal: list[str] | None = None) -> None:
        self.versions: dict[tuple[str, str], int] = {}
        self.published: dict[tuple[str, str], int] = {}
        self.digests: dict[tuple[str, str], str] = {}
        self.retired: dict[tuple[str, str], datetime] = {}
        # The function dies after its publish, before recording it (a BaseException: nothing catches it).
        self.crash_before_mark: BaseException | None = None
        self.journal = journal if journal is not None else []

    def ledger(self, cluster: str) -> dict[str, LedgerEntry]:
        self.journal.append("read versions")
        groups = {group for owner, group in (*self.versions, *self.published) if owner == cluster}
        return {
            group: LedgerEntry(
                claimed=self.versions.get((cluster, group), 0),
                published=self.published.get((cluster, group)),
                published_digest=self.digests.get((cluster, group)),
                retired_at=self.retired.get((cluster, group)),
            )
            for group in groups
        }

    def lose_table(self) -> None:
        """The table is deleted and created again: the ledger starts empty."""
        self.versions.clear()
        self.published.clear()
        self.digests.clear()
        self.retired.clear()

    def claim_version(self, cluster: str, group: str, expected: int, claimed: int) -> bool:
        stored = self.versions.get((cluster, group))
        won = stored is None or stored == expected
        self.journal.append(f"claim {group} {expected}->{claimed} {'won' if won else 'lost'}")
        if won:
            self.versions[(cluster, group)] = claimed
        return won

    def mark_published(
        self, cluster: str, group: str, version: int, digest: str, *, at: datetime, retired: bool
    ) -> None:
        if self.crash_before_mark is not None:
            raise self.crash_before_mark
        self.journal.append(f"published {group} {version}")
        key = (cluster, group)
        if self.published.get(key, 0) < version:
            self.published[key] = version
            self.digests[key] = digest
            if not retired:
                self.retired.pop(key, None)
            else:
                self.retired.setdefault(key, at)


class FakeSnapshotTopic(SnapshotTopic):
    """Records what was published; `failure` makes every publish raise it, `refused` the publishes of
    those groups (too large, an outage of their own)."""

    def __init__(self, journal: list[str] | None = None) -> None:
        self.published: list[MembershipSnapshot] = []
        self.failure: Exception | None = None
        self.refused: set[str] = set()
        self.journal = journal if journal is not None else []

    def publish(self, snapshot: MembershipSnapshot) -> str:
        if self.failure is not None:
            raise self.failure
        if snapshot.source.group in self.refused:
            raise ConnectionError(f"publish of {snapshot.source.group} refused")
        snapshot.to_json()  # what SNS is sent; a snapshot no delivery can carry raises here
        self.published.append(parse_snapshot(snapshot.to_json()))
        self.journal.append(f"publish {snapshot.source.group} v{snapshot.version}")
        return f"message-{len(self.published)}"


class FakeProducerOutcomes(ProducerOutcomes):
    """Keeps every count."""

    def __init__(self) -> None:
        self.counts: Counter[ProducerOutcome] = Counter()

    def count(self, outcome: ProducerOutcome, value: int = 1) -> None:
        self.counts[outcome] += value


class FakeLifecycleHooks(LifecycleHooks, Completions):
    """Records the actions completed with CONTINUE (`continued`), and every completion's result."""

    def __init__(self, journal: list[str] | None = None) -> None:
        self.continued: list[LifecycleAction] = []
        self.results: list[tuple[str, str]] = []
        self.journal = journal if journal is not None else []

    def complete(self, action: LifecycleAction, result: str = "CONTINUE") -> bool:
        if result == "CONTINUE":
            self.continued.append(action)
        self.results.append((action.instance_id, result))
        self.journal.append(f"{result.lower()} {action.instance_id}")
        return True


class FakeAdmissionBook(AdmissionBook):
    """The producer's view of its table for the barrier: admissions (a put replaces; settling is
    conditioned on `status = pending AND token = :token`) and the consumer's acknowledgements."""

    def __init__(self, acknowledgements: FakeAcknowledgementBook, journal: list[str] | None = None) -> None:
        self.items: dict[tuple[str, str, str], Admission] = {}
        self.acks = acknowledgements
        self.journal = journal if journal is not None else []

    def record_admissions(self, cluster: str, admissions: Sequence[Admission]) -> None:
        for admission in admissions:
            self.items[(cluster, admission.group, admission.instance_id)] = admission
            self.journal.append(f"hold {admission.instance_id} for v{admission.version}")

    def admissions(self, cluster: str, group: str | None = None) -> list[Admission]:
        return [
            a for (owner, of, _i), a in sorted(self.items.items()) if owner == cluster and group in (None, of)
        ]

    def settle_admission(
        self, cluster: str, admission: Admission, status: AdmissionStatus, at: datetime
    ) -> bool:
        key = (cluster, admission.group, admission.instance_id)
        held = self.items.get(key)
        if held is None or held.status is not AdmissionStatus.PENDING or held.token != admission.token:
            return False
        self.items[key] = held.settled(status)
        return True

    def acknowledgements(self, cluster: str, source: str | None = None) -> list[AckRecord]:
        return self.acks.acknowledgements(cluster, source)


# --- builders ----------------------------------------------------------------------------------------

CLUSTER = "prod"
PRODUCED_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
# When the consumers under test receive what the builders make: half a minute after it was produced.
RECEIVED_AT = PRODUCED_AT + timedelta(seconds=30)


def topic_arn(source: Source, cluster: str = CLUSTER) -> str:
    """The topic of the source's own region and account."""
    return f"arn:aws:sns:{source.region}:{source.account}:sgmesh-{cluster}"


def make_member(instance_id: str, public_ipv4: str | None = None, private_ipv4: str | None = None) -> Member:
    return Member(instance_id=instance_id, public_ipv4=public_ipv4, private_ipv4=private_ipv4)


def make_snapshot(
    source: Source,
    version: int,
    members: Iterable[Member] = (),
    *,
    cluster: str = CLUSTER,
    cause: Cause | None = None,
) -> MembershipSnapshot:
    """A snapshot whose event id depends only on its source and version, so redeliveries compare equal."""
    return MembershipSnapshot(
        event_id=uuid5(NAMESPACE_URL, f"{cluster}/{source.key}/{version}"),
        cluster=cluster,
        source=source,
        version=version,
        produced_at=PRODUCED_AT,
        cause=cause or Cause(kind=CauseKind.TRUEUP),
        members=tuple(members),
    )


def largest_snapshot(members: int = MAX_MEMBERS, ipv6_per_member: int = 4) -> MembershipSnapshot:
    """The documented maximum at its widest: every member with every field, several IPv6 addresses
    each (random interface ids in one of 256 subnets of a /56, as AWS assigns them), the longest
    names the schema allows around them. Seeded: the same bytes every run."""
    rng = random.Random(12)  # noqa: S311 - reproducible test data, not secrets

    def hexes(count: int) -> str:
        return "".join(rng.choice("0123456789abcdef") for _ in range(count))

    def ipv6(subnet: int) -> str:
        return f"2600:1f18:4a3c:9f{subnet:02x}:" + ":".join(
            f"{rng.randrange(1 << 12, 1 << 16):x}" for _ in range(4)
        )

    def member(n: int) -> Member:
        subnet = rng.randrange(256)
        return Member(
            instance_id=f"i-{hexes(17)}",
            public_ipv4=f"54.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}/32",
            private_ipv4=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}/32",
            ipv6=tuple(f"{ipv6(subnet)}/128" for _ in range(ipv6_per_member)),
            availability_zone="ap-southeast-2-per-1a",
            lifecycle_state="Pending:Proceed",
        )

    return MembershipSnapshot(
        event_id=UUID(int=rng.getrandbits(128)),
        cluster="c" * 40,
        source=Source(account="111111111111", region="ap-southeast-2", group="g" * 255),
        version=2**53 - 1,
        produced_at=PRODUCED_AT,
        cause=Cause(
            kind=CauseKind.LAUNCHING,
            instance_id=f"i-{hexes(17)}",
            lifecycle_hook="h" * 255,
            lifecycle_token="6b1f7f4c-2a8e-4c8e-9d3c-3f2f0c8b1a11",
        ),
        members=tuple(member(n) for n in range(members)),
    )


def sns_body(message: str, arn: str, message_id: UUID | str = "00000000-0000-0000-0000-000000000001") -> str:
    """An SQS body as SNS delivers it with raw delivery off, signed by the tests' SNS key."""
    envelope = {
        "Type": "Notification",
        "MessageId": str(message_id),
        "TopicArn": arn,
        "Message": message,
        "Timestamp": "2024-05-01T12:00:30.000Z",
        "SigningCertURL": certificate_url_for(arn),
        "UnsubscribeURL": "https://sns.example.invalid/unsubscribe",
    }
    return json.dumps(sns_signer().sign(envelope))


def fake_consumer(
    settings: Settings,
    *,
    states: FakeSourceStates | None = None,
    groups: SecurityGroups | None = None,
    lists: PrefixListApi | None = None,
    audit: FakeAuditLog | None = None,
    outcomes: FakeOutcomes | None = None,
    clock: Callable[[], datetime] = lambda: RECEIVED_AT,
    max_conflict_retries: int = 3,
    verify: VerifyEnvelope | None = None,
    topic: FakeEventTopic | None = None,
    book: FakeAcknowledgementBook | None = None,
    checks: FakeLifecycleQueue | None = None,
) -> ApplyService[Any]:
    """The consumer over in-memory ports, with the target its settings choose, trusting the tests'
    SNS key unless `verify` says otherwise, its clock just after PRODUCED_AT; what it publishes to its
    own topic (resync requests and answers, acknowledgements) goes to `topic`, the acknowledgements it
    records to `book`, and what it asks of its producer to `checks`."""
    states = states or FakeSourceStates()
    outcomes = outcomes or FakeOutcomes()
    topic = topic or FakeEventTopic()
    audit = audit or FakeAuditLog()
    logger = Logger(service="test")
    return ApplyService(
        settings=settings,
        states=states,
        target=target(
            settings,
            states=states,
            groups=groups or FakeSecurityGroups(*settings.security_group_ids),
            lists=lists or FakePrefixLists(),
            outcomes=outcomes,
            logger=logger,
            rule_quota=lambda: settings.rule_quota,
            clock=clock,
        ),
        audit=audit,
        outcomes=outcomes,
        verify=verify or verify_with_test_key(),
        logger=logger,
        acknowledgements=Acknowledgements(
            settings=settings,
            topic=topic,
            book=book or FakeAcknowledgementBook(),
            audit=audit,
            checks=checks,
            outcomes=outcomes,
            logger=logger,
            clock=clock,
        ),
        resync=Resync(
            settings=settings,
            topic=topic,
            states=states,
            answers=states,
            outcomes=outcomes,
            logger=logger,
            clock=clock,
        ),
        clock=clock,
        max_conflict_retries=max_conflict_retries,
    )


def verify_with_test_key() -> VerifyEnvelope:
    """The consumer's signature check, trusting the tests' SNS key as Lambda trusts SNS's."""
    return SignatureVerifier(lambda _url: sns_signer().certificate_pem).verify
