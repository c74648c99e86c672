"""Composition root of the consumer: builds the apply service for an environment, lazily."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import Logger

from cloud.clients import ClientFactory
from cloud.dynamodb import Table
from cloud.ec2 import Ec2
from cloud.prefix_lists import PrefixLists
from cloud.service_quotas import RuleBudgetReader
from cloud.sns import Topic
from cloud.sns_certificates import certificate
from cloud.sqs import LifecycleQueue
from consumers.acknowledgements import Acknowledgements
from consumers.group_targets import Counts, SecurityGroups, SecurityGroupTarget, ShardedTarget
from consumers.metrics import EmfOutcomes, metrics
from consumers.resync import Resync
from consumers.service import ApplyService, Target
from consumers.signatures import SignatureVerifier
from consumers.sources import SourceRecords
from schemas.settings import Settings, TargetMode, current_settings

if TYPE_CHECKING:
    from consumers.prefix_list_target import PrefixListApi, PrefixListTarget

logger = Logger(service="sgmesh-consumer")

_services: dict[tuple[Settings, ClientFactory], ApplyService[Any]] = {}


def rule_budget(settings: Settings, clients: ClientFactory) -> RuleBudgetReader:
    """The region's rule budget, read from Service Quotas once (the reader caches it)."""
    return RuleBudgetReader(clients.service_quotas(settings.region), settings.rule_quota, logger)


def build(
    settings: Settings, clients: ClientFactory, budget: RuleBudgetReader | None = None
) -> ApplyService[Any]:
    table = Table(clients.dynamodb(settings.region), settings.table_name)
    reader = budget or rule_budget(settings, clients)
    outcomes = EmfOutcomes(metrics, settings.cluster)
    ec2 = clients.ec2(settings.region)
    own_topic = settings.own_topic_arn()
    # This region's topic only: a consumer never writes to another region.
    topic = Topic(clients.sns(settings.region), own_topic) if own_topic else None
    queue_url = settings.admission_queue_url
    return ApplyService(
        settings=settings,
        states=table,
        # The rule budget (Service Quotas capped by the setting) is read on first use, not here:
        # building the service makes no AWS call.
        target=target(
            settings,
            states=table,
            groups=Ec2(ec2),
            lists=PrefixLists(ec2),
            outcomes=outcomes,
            logger=logger,
            rule_quota=lambda: reader().quota,
        ),
        audit=table,
        outcomes=outcomes,
        verify=SignatureVerifier(certificate).verify,
        logger=logger,
        acknowledgements=Acknowledgements(
            settings=settings,
            topic=topic,
            book=table,
            audit=table,
            checks=LifecycleQueue(clients.sqs(settings.region), queue_url) if queue_url else None,
            outcomes=outcomes,
            logger=logger,
            clock=lambda: datetime.now(UTC),
        ),
        resync=Resync(
            settings=settings,
            topic=topic,
            states=table,
            answers=table,
            outcomes=outcomes,
            logger=logger,
            clock=lambda: datetime.now(UTC),
        ),
    )


def target(
    settings: Settings,
    *,
    states: SourceRecords,
    groups: SecurityGroups,
    lists: PrefixListApi,
    outcomes: Counts,
    logger: Logger,
    rule_quota: Callable[[], int],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Target[Any]:
    """The target the settings choose, over the given ports (AWS's here, fakes in the tests)."""
    chosen: type[SecurityGroupTarget | PrefixListTarget]
    if settings.target is TargetMode.PREFIX_LIST:
        # Imported here: only prefix-list deployments pay for these modules at cold start.
        from consumers.prefix_list_target import PrefixListTarget

        chosen = PrefixListTarget
    else:
        chosen = ShardedTarget if settings.target is TargetMode.SHARDED else SecurityGroupTarget
    return chosen(
        settings=settings,
        states=states,
        groups=groups,
        lists=lists,
        outcomes=outcomes,
        logger=logger,
        rule_quota=rule_quota,
        clock=clock,
    )


def apply_service(environ: Mapping[str, str], clients: ClientFactory) -> ApplyService[Any]:
    """The service for this environment (Lambda's: the process's own) and these clients, built on
    first use; the settings are read at each call, never at import."""
    key = (current_settings(environ), clients)
    if key not in _services:
        _services[key] = build(*key)
    return _services[key]
