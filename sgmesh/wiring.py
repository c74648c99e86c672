"""Pure: the wiring each region needs (subscriptions, policies, hooks, lifecycle rule), and what differs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from schemas.names import topic_region_and_account
from schemas.regions import sns_principals
from schemas.routing import FILTER_POLICY_SCOPE, subscription_filter_policy

# The template's subscriptions: SNS envelopes (the consumer checks TopicArn), filtered on message
# attributes by schemas.routing's policy for the subscribing queue's region.
RAW_DELIVERY = False
# A send grant with no aws:SourceArn condition admits any source; an AWS principal "*", any account.
ANY = "*"


def lifecycle_hooks(cluster: str) -> dict[str, str]:
    """The hooks the stack puts on each named group: name -> transition."""
    return {
        f"sgmesh-{cluster}-launching": "autoscaling:EC2_INSTANCE_LAUNCHING",
        f"sgmesh-{cluster}-terminating": "autoscaling:EC2_INSTANCE_TERMINATING",
    }


def lifecycle_rule(cluster: str) -> str:
    return f"sgmesh-{cluster}-lifecycle"


@dataclass(frozen=True)
class RegionWiring:
    """Where one region's stack put the wiring's parts (its outputs), and its named groups."""

    region: str
    topic_arn: str
    queue_arn: str
    dead_letter_arn: str  # the delivery DLQ
    buffer_arn: str
    groups: tuple[str, ...]

    @property
    def account(self) -> str:
        return self.queue_arn.split(":")[4]


@dataclass(frozen=True)
class Expected:
    """What one region's wiring must be, from the whole cluster's view."""

    cluster: str
    wiring: RegionWiring
    topics: tuple[str, ...]  # every topic of the cluster: the queue subscribes to each, and admits each
    dead_letters: Mapping[str, str]  # topic -> the delivery DLQ its subscription names ("" if unknown)
    principals: frozenset[str]  # the SNS principals the queue and its delivery DLQ admit
    subscribers: frozenset[str]  # the accounts that may subscribe to this region's topic

    @property
    def region(self) -> str:
        return self.wiring.region


def expectations(
    cluster: str,
    regions: Sequence[RegionWiring],
    peer_topics: Sequence[str] = (),
    peer_accounts: Iterable[str] = (),
) -> list[Expected]:
    """Every queue subscribes to every topic (own region's, other regions', peers'), each with this
    account's delivery DLQ in the topic's region; the queue policies admit exactly those topics, as the
    SNS principals of the regions involved; each topic admits the subscribing accounts."""
    topics = (*(wiring.topic_arn for wiring in regions), *peer_topics)
    topic_regions = [topic_region_and_account(arn)[0] for arn in topics]
    accounts = {wiring.account for wiring in regions} | set(peer_accounts)
    expected = []
    for wiring in regions:
        dead_letters = {
            arn: next(
                (
                    other.dead_letter_arn
                    for other in regions
                    if other.region == topic_region_and_account(arn)[0] and other.account == wiring.account
                ),
                "",
            )
            for arn in topics
        }
        expected.append(
            Expected(
                cluster=cluster,
                wiring=wiring,
                topics=topics,
                dead_letters=dead_letters,
                principals=frozenset(sns_principals(wiring.region, topic_regions)),
                subscribers=frozenset(accounts),
            )
        )
    return expected


# ------------------------------------------------------------------------------------------- observed


@dataclass(frozen=True)
class Subscription:
    """The queue's subscription to one topic, as SNS describes it."""

    arn: str
    raw_delivery: bool
    dead_letter_arn: str | None
    filter_policy: str | None = None
    filter_policy_scope: str | None = None
    pending: bool = False


@dataclass(frozen=True)
class Grant:
    """Who may do an action, from a resource policy's Allow statements: principals, and the source
    ARNs a condition limits them to (ANY when a statement has no such condition)."""

    principals: frozenset[str]
    sources: frozenset[str]


@dataclass(frozen=True)
class Rule:
    """The lifecycle rule as EventBridge describes it."""

    enabled: bool
    targets: frozenset[str]
    groups: frozenset[str]


@dataclass(frozen=True)
class Observed:
    """What one region's wiring is. A topic missing from `subscriptions` does not exist; None there
    means the queue has no subscription to it. A group missing from `hooks` does not exist."""

    subscriptions: Mapping[str, Subscription | None]
    queue_grant: Grant | None
    dead_letter_grant: Grant | None
    topic_subscribers: Grant | None  # None: this region's topic does not exist
    hooks: Mapping[str, Mapping[str, str]]  # group -> hook name -> transition
    rule: Rule | None
    unread_topics: frozenset[str] = frozenset()  # topics whose subscriptions could not be read
    unreadable: tuple[str, ...] = ()  # what could not be read, and why


# ------------------------------------------------------------------------------------------- findings


class Part(StrEnum):
    STACK = "stack"
    TOPIC = "topic"
    SUBSCRIPTION = "subscription"
    QUEUE_POLICY = "queue policy"
    DEAD_LETTER_POLICY = "delivery DLQ policy"
    TOPIC_POLICY = "topic policy"
    HOOK = "lifecycle hook"
    RULE = "lifecycle rule"


@dataclass(frozen=True)
class Resubscribe:
    """The subscription the template declares for a queue and a topic, to create or set back."""

    topic_arn: str
    queue_arn: str
    dead_letter_arn: str
    subscription_arn: str | None = None  # set when it exists with other attributes

    @property
    def attributes(self) -> dict[str, str]:
        return {
            "RawMessageDelivery": json.dumps(RAW_DELIVERY),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": self.dead_letter_arn}),
            "FilterPolicyScope": FILTER_POLICY_SCOPE,
            "FilterPolicy": json.dumps(subscription_filter_policy(_arn_region(self.queue_arn))),
        }


@dataclass(frozen=True)
class Finding:
    region: str
    part: Part
    subject: str
    problem: str
    fix: str
    repair: Resubscribe | None = None


DEPLOY = "make deploy (it updates the stack)"
STALE = "deploy the cluster's regions again (make deploy REGIONS=...): the stack still names it"


def check(expected: Expected, observed: Observed) -> list[Finding]:
    """Everything in the region's wiring that differs from what the cluster needs, each with its fix."""
    region = expected.region
    findings = [
        Finding(region, Part.STACK, "", reason, "check the credentials") for reason in observed.unreadable
    ]
    findings += _subscription_findings(expected, observed)
    for part, grant in (
        (Part.QUEUE_POLICY, observed.queue_grant),
        (Part.DEAD_LETTER_POLICY, observed.dead_letter_grant),
    ):
        findings += _grant_findings(region, part, expected, grant)
    findings += _topic_findings(expected, observed.topic_subscribers)
    findings += _hook_findings(expected, observed.hooks)
    findings += _rule_findings(expected, observed.rule)
    return findings


def _subscription_findings(expected: Expected, observed: Observed) -> list[Finding]:
    region, queue = expected.region, expected.wiring.queue_arn
    findings = []
    for topic in expected.topics:
        dead_letters = expected.dead_letters.get(topic, "")
        if topic in observed.unread_topics:
            continue
        if topic not in observed.subscriptions:
            findings.append(
                Finding(
                    region,
                    Part.TOPIC,
                    topic,
                    "does not exist: nothing reaches this queue from it",
                    "deploy the topic's region (or remove it from the cluster and deploy the rest)",
                )
            )
            continue
        found = observed.subscriptions[topic]
        wanted = Resubscribe(topic, queue, dead_letters) if dead_letters else None
        if found is None:
            fix = "make deploy or sgmesh doctor --repair re-creates it" if wanted else DEPLOY
            findings.append(
                Finding(
                    region,
                    Part.SUBSCRIPTION,
                    topic,
                    "missing: this region receives nothing from the topic",
                    fix,
                    wanted,
                )
            )
            continue
        findings += [
            Finding(
                region,
                Part.SUBSCRIPTION,
                topic,
                problem,
                "make deploy or sgmesh doctor --repair sets it back",
                wanted and Resubscribe(topic, queue, dead_letters, found.arn),
            )
            for problem in _subscription_problems(found, dead_letters, topic, queue)
        ]
    return findings


def _subscription_problems(found: Subscription, dead_letters: str, topic: str, queue: str) -> list[str]:
    problems = []
    if found.pending:
        problems.append("pending confirmation: nothing is delivered until the queue's owner confirms it")
    if found.raw_delivery != RAW_DELIVERY:
        problems.append("raw delivery is on: the consumer rejects messages without their SNS envelope")
    problems += _filter_problems(found, _arn_region(queue))
    if found.dead_letter_arn is None:
        problems.append("no redrive policy: what SNS cannot deliver is lost")
    elif dead_letters and found.dead_letter_arn != dead_letters:
        problems.append(f"dead letters go to {found.dead_letter_arn}, not {dead_letters}")
    elif not dead_letters and found.dead_letter_arn.split(":")[3] != topic_region_and_account(topic)[0]:
        problems.append(f"dead letters go to {found.dead_letter_arn}, outside the topic's region")
    return problems


def _filter_problems(found: Subscription, region: str) -> list[str]:
    """The template's filter, as SNS keeps it (JSON, compared parsed); anything else loses events or
    lets every region's acknowledgements through."""
    if not found.filter_policy:
        return ["no filter policy: every region's acknowledgements arrive here too"]
    wanted = subscription_filter_policy(region)
    try:
        policy = json.loads(found.filter_policy)
    except json.JSONDecodeError:
        policy = None
    problems = []
    if policy != wanted:
        problems.append(
            f"its filter policy {found.filter_policy} is not {json.dumps(wanted)}: events may never arrive"
        )
    if (found.filter_policy_scope or FILTER_POLICY_SCOPE) != FILTER_POLICY_SCOPE:
        problems.append(
            f"its filter policy applies to the {found.filter_policy_scope}, not the message attributes"
        )
    return problems


def _arn_region(arn: str) -> str:
    return arn.split(":")[3]


def _grant_findings(region: str, part: Part, expected: Expected, grant: Grant | None) -> list[Finding]:
    if grant is None:
        return [Finding(region, part, "", "missing: SNS may deliver to it from no topic", DEPLOY)]
    findings = []
    missing, extra = set(expected.topics) - grant.sources, grant.sources - set(expected.topics)
    findings += [
        Finding(region, part, topic, "does not admit the topic: its deliveries are refused", DEPLOY)
        for topic in sorted(missing)
    ]
    findings += [
        Finding(
            region,
            part,
            source,
            "admits any source" if source == ANY else "admits a topic that is not the cluster's (stale)",
            DEPLOY if source == ANY else STALE,
        )
        for source in sorted(extra)
    ]
    for principal in sorted(expected.principals - grant.principals):
        findings.append(
            Finding(
                region,
                part,
                principal,
                "does not admit this SNS principal: deliveries it makes are refused",
                DEPLOY,
            )
        )
    for principal in sorted(grant.principals - expected.principals):
        findings.append(
            Finding(region, part, principal, "admits a principal the cluster does not need", DEPLOY)
        )
    return findings


def _topic_findings(expected: Expected, subscribers: Grant | None) -> list[Finding]:
    region = expected.region
    if subscribers is None:
        return []  # its absence is a finding of every region's subscriptions
    findings = [
        Finding(region, Part.TOPIC_POLICY, account, "does not let this account subscribe its queue", DEPLOY)
        for account in sorted(expected.subscribers - subscribers.principals)
    ]
    findings += [
        Finding(
            region,
            Part.TOPIC_POLICY,
            account,
            "lets any account subscribe"
            if account == ANY
            else "lets an account outside the cluster subscribe",
            DEPLOY,
        )
        for account in sorted(subscribers.principals - expected.subscribers)
    ]
    return findings


def _hook_findings(expected: Expected, hooks: Mapping[str, Mapping[str, str]]) -> list[Finding]:
    region, findings = expected.region, []
    for group in expected.wiring.groups:
        if group not in hooks:
            findings.append(
                Finding(
                    region,
                    Part.HOOK,
                    group,
                    "no such Auto Scaling group",
                    "create it, or remove it from the settings and deploy",
                )
            )
            continue
        for name, transition in lifecycle_hooks(expected.cluster).items():
            if hooks[group].get(name) != transition:
                findings.append(
                    Finding(
                        region,
                        Part.HOOK,
                        f"{group}: {name}",
                        f"missing: no {transition.split(':')[1]} event reaches the producer",
                        DEPLOY,
                    )
                )
    return findings


def _rule_findings(expected: Expected, rule: Rule | None) -> list[Finding]:
    region, name = expected.region, lifecycle_rule(expected.cluster)
    if rule is None:
        return [Finding(region, Part.RULE, name, "missing: lifecycle events reach no producer", DEPLOY)]
    findings = []
    if not rule.enabled:
        findings.append(
            Finding(region, Part.RULE, name, "disabled: lifecycle events reach no producer", DEPLOY)
        )
    if expected.wiring.buffer_arn not in rule.targets:
        findings.append(
            Finding(
                region,
                Part.RULE,
                name,
                f"does not target the lifecycle buffer {expected.wiring.buffer_arn}",
                DEPLOY,
            )
        )
    missing = sorted(set(expected.wiring.groups) - rule.groups)
    if missing:
        findings.append(Finding(region, Part.RULE, name, f"matches no event of {', '.join(missing)}", DEPLOY))
    return findings


# ------------------------------------------------------------------------------------------- policies


def send_grant(policy: str | None, action: str = "sqs:SendMessage") -> Grant | None:
    """The service principals a queue policy lets do `action`, and the source ARNs it limits them to;
    None when no statement allows it."""
    return _grant(policy, action, _service_principals)


def subscribe_grant(policy: str | None) -> Grant | None:
    """The accounts a topic policy lets subscribe (ANY for "*" not limited to accounts by a condition)."""
    return _grant(policy, "sns:Subscribe", _accounts)


def _grant(policy: str | None, action: str, principals: Any) -> Grant | None:
    statements = _statements(policy)
    allowing = [s for s in statements if s.get("Effect") == "Allow" and _covers(s.get("Action"), action)]
    if not allowing:
        return None
    found: set[str] = set()
    sources: set[str] = set()
    for statement in allowing:
        found |= principals(statement)
        sources |= _source_arns(statement.get("Condition", {}))
    return Grant(frozenset(found), frozenset(sources))


def _statements(policy: str | None) -> list[dict[str, Any]]:
    if not policy:
        return []
    statements = json.loads(policy).get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def _covers(actions: object, action: str) -> bool:
    service = action.split(":")[0]
    return any(item.lower() in {action.lower(), f"{service}:*", "*"} for item in _as_list(actions))


def _service_principals(statement: dict[str, Any]) -> set[str]:
    principal = statement.get("Principal", {})
    if principal == ANY:
        return {ANY}
    return set(_as_list(principal.get("Service"))) | {
        ANY for item in _as_list(principal.get("AWS")) if item == ANY
    }


def _accounts(statement: dict[str, Any]) -> set[str]:
    principal = statement.get("Principal", {})
    named = [ANY] if principal == ANY else _as_list(principal.get("AWS"))
    accounts = {
        item if item == ANY else item.split(":")[4] if item.startswith("arn:") else item for item in named
    }
    if ANY in accounts:
        limited = _condition_values(
            statement.get("Condition", {}), ("aws:sourceowner", "aws:sourceaccount", "aws:principalaccount")
        )
        if limited:
            accounts = (accounts - {ANY}) | limited
    return accounts


def _source_arns(condition: Mapping[str, Any]) -> set[str]:
    return _condition_values(condition, ("aws:sourcearn",)) or {ANY}


def _condition_values(condition: Mapping[str, Any], keys: tuple[str, ...]) -> set[str]:
    return {
        value
        for operator in condition.values()
        if isinstance(operator, Mapping)
        for key, values in operator.items()
        if key.lower() in keys
        for value in _as_list(values)
    }


@dataclass(frozen=True)
class Diagnosis:
    """The verdict over the regions checked: every finding, and what a repair did."""

    regions: tuple[str, ...]
    findings: tuple[Finding, ...]
    repaired: tuple[Finding, ...] = field(default=())

    @property
    def healthy(self) -> bool:
        return not self.findings

    def verdict(self) -> str:
        regions = ", ".join(self.regions)
        repaired = f"; {len(self.repaired)} subscription(s) repaired" if self.repaired else ""
        if self.healthy:
            return f"wiring healthy in {regions}{repaired}"
        return f"wiring broken: {len(self.findings)} problem(s) in {regions}{repaired}"

    def lines(self) -> list[str]:
        """One line per finding, then the verdict (what `make deploy` prints)."""
        described = [
            f"{f.region}: {' '.join(filter(None, (f.part.value, f.subject)))}: {f.problem} ({f.fix})"
            for f in self.findings
        ]
        return [*described, self.verdict()]
