"""Composition root of the consumer: builds the apply service for this environment, lazily."""

from __future__ import annotations

import os

from aws_lambda_powertools.logging import Logger

from cloud.clients import ClientFactory, client_factory
from cloud.dynamodb import Table
from cloud.ec2 import Ec2
from consumers.metrics import EmfOutcomes, metrics
from consumers.service import ApplyService
from schemas.settings import Settings, current_settings

logger = Logger(service="sgmesh-consumer")

_services: dict[tuple[Settings, ClientFactory], ApplyService] = {}


def build(settings: Settings, clients: ClientFactory) -> ApplyService:
    table = Table(clients.dynamodb(settings.region), settings.table_name)
    return ApplyService(
        settings=settings,
        states=table,
        groups=Ec2(clients.ec2(settings.region)),
        audit=table,
        outcomes=EmfOutcomes(metrics, settings.cluster),
        logger=logger,
    )


def apply_service() -> ApplyService:
    """The service for the current environment and client factory, built on first use."""
    key = (current_settings(os.environ), client_factory())
    if key not in _services:
        _services[key] = build(*key)
    return _services[key]
