"""Composition root of the producers: builds the snapshot service for an environment, lazily."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from aws_lambda_powertools.logging import Logger

from cloud.autoscaling import AutoScaling
from cloud.clients import ClientFactory
from cloud.dynamodb import Table
from cloud.ec2 import Ec2
from cloud.sns import Topic
from cloud.sqs import LifecycleQueue
from producers.admission import AdmissionBarrier
from producers.metrics import EmfOutcomes
from producers.service import SnapshotService
from schemas.names import topic_region_and_account
from schemas.settings import Settings, current_settings

logger = Logger(service="sgmesh-producer")

_services: dict[tuple[Settings, ClientFactory], SnapshotService] = {}


def build(settings: Settings, clients: ClientFactory) -> SnapshotService:
    region = settings.region
    autoscaling = AutoScaling(clients.autoscaling(region))
    table = Table(clients.dynamodb(region), settings.table_name)
    outcomes = EmfOutcomes(settings.cluster)
    return SnapshotService(
        settings=settings,
        groups=autoscaling,
        addresses=Ec2(clients.ec2(region)),
        ledger=table,
        topic=Topic(clients.sns(region), settings.topic_arn or ""),
        hooks=autoscaling,
        outcomes=outcomes,
        logger=logger,
        barrier=barrier(settings, clients, table, autoscaling, outcomes),
    )


def barrier(
    settings: Settings, clients: ClientFactory, table: Table, autoscaling: AutoScaling, outcomes: EmfOutcomes
) -> AdmissionBarrier | None:
    """The admission barrier over this region's table, lifecycle buffer and hooks (none: launches are
    completed once published, as where no queue is set)."""
    if not settings.holds_launches or settings.admission_queue_url is None or settings.topic_arn is None:
        return None
    return AdmissionBarrier(
        settings=settings,
        account=topic_region_and_account(settings.topic_arn)[1],
        book=table,
        queue=LifecycleQueue(clients.sqs(settings.region), settings.admission_queue_url),
        hooks=autoscaling,
        outcomes=outcomes,
        logger=logger,
        clock=lambda: datetime.now(UTC),
    )


def snapshot_service(environ: Mapping[str, str], clients: ClientFactory) -> SnapshotService:
    """The service for this environment (Lambda's: the process's own) and these clients, built on
    first use; the settings are read at each call, never at import."""
    key = (current_settings(environ), clients)
    if key not in _services:
        _services[key] = build(*key)
    return _services[key]
