"""Composition root of the consumer: builds the apply service for an environment, lazily."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aws_lambda_powertools.logging import Logger

from cloud.clients import ClientFactory
from cloud.dynamodb import Table
from cloud.ec2 import Ec2
from cloud.service_quotas import RuleBudgetReader
from cloud.sns_certificates import certificate
from consumers.metrics import EmfOutcomes, metrics
from consumers.service import ApplyService, Outcomes, Target
from consumers.signatures import SignatureVerifier
from schemas.settings import Settings, TargetMode, current_settings

logger = Logger(service="sgmesh-consumer")

_services: dict[tuple[Settings, ClientFactory], ApplyService] = {}


def rule_budget(settings: Settings, clients: ClientFactory) -> RuleBudgetReader:
    """The region's rule budget, read from Service Quotas once (the reader caches it)."""
    return RuleBudgetReader(clients.service_quotas(settings.region), settings.rule_quota, logger)


def build(settings: Settings, clients: ClientFactory, budget: RuleBudgetReader | None = None) -> ApplyService:
    table = Table(clients.dynamodb(settings.region), settings.table_name)
    budget = budget or rule_budget(settings, clients)
    outcomes = EmfOutcomes(metrics, settings.cluster)
    return ApplyService(
        settings=settings,
        states=table,
        groups=Ec2(clients.ec2(settings.region)),
        audit=table,
        outcomes=outcomes,
        verify=SignatureVerifier(certificate).verify,
        logger=logger,
        rule_quota=lambda: budget().quota,
        target=target(settings, clients, table, outcomes, lambda: budget().quota),
    )


def target(
    settings: Settings, clients: ClientFactory, table: Table, outcomes: Outcomes, quota: Callable[[], int]
) -> Target | None:
    """The target the settings choose; None for per-address rules in the groups (the service's own)."""
    if settings.target is TargetMode.PREFIX_LIST:
        # Imported here: only prefix-list deployments pay for these modules at cold start.
        from cloud.prefix_lists import PrefixLists
        from consumers.prefix_list_target import PrefixListTarget

        lists = PrefixLists(clients.ec2(settings.region))
        return PrefixListTarget(
            settings=settings, states=table, lists=lists, outcomes=outcomes, logger=logger, rule_quota=quota
        )
    return None


def apply_service(environ: Mapping[str, str], clients: ClientFactory) -> ApplyService:
    """The service for this environment (Lambda's: the process's own) and these clients, built on
    first use; the settings are read at each call, never at import."""
    key = (current_settings(environ), clients)
    if key not in _services:
        _services[key] = build(*key)
    return _services[key]
