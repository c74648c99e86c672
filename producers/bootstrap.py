"""Composition root of the producers: builds the snapshot service for an environment, lazily."""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools.logging import Logger

from cloud.autoscaling import AutoScaling
from cloud.clients import ClientFactory
from cloud.dynamodb import Table
from cloud.ec2 import Ec2
from cloud.sns import Topic
from producers.metrics import EmfOutcomes
from producers.service import SnapshotService
from schemas.settings import Settings, current_settings

logger = Logger(service="sgmesh-producer")

_services: dict[tuple[Settings, ClientFactory], SnapshotService] = {}


def build(settings: Settings, clients: ClientFactory) -> SnapshotService:
    region = settings.region
    autoscaling = AutoScaling(clients.autoscaling(region))
    return SnapshotService(
        settings=settings,
        groups=autoscaling,
        addresses=Ec2(clients.ec2(region)),
        ledger=Table(clients.dynamodb(region), settings.table_name),
        topic=Topic(clients.sns(region), settings.topic_arn or ""),
        hooks=autoscaling,
        outcomes=EmfOutcomes(settings.cluster),
        logger=logger,
    )


def snapshot_service(environ: Mapping[str, str], clients: ClientFactory) -> SnapshotService:
    """The service for this environment (Lambda's: the process's own) and these clients, built on
    first use; the settings are read at each call, never at import."""
    key = (current_settings(environ), clients)
    if key not in _services:
        _services[key] = build(*key)
    return _services[key]
