"""The deploy of one cluster to N regions of one account: topics first, then every queue onto every topic."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import boto3

from infra.deploy.artifacts import ArtifactStore
from infra.deploy.checks import check_plan
from infra.deploy.cloudformation import TemplateUrl, deploy_stack, stack_parameter, stack_status
from infra.deploy.config import ClusterConfig
from infra.deploy.errors import DeployError
from infra.deploy.identity import Identity
from infra.deploy.names import stack_name, topic_arn
from infra.deploy.sns import topic_exists
from infra.deploy.subscriptions import subscription_steps, topic_order
from infra.deploy.template import load_template, stack_parameters
from infra.deploy.transform import transform
from schemas.names import topic_region_and_account


class Deployment:
    """Deploys one cluster's stacks in the given regions of one account."""

    def __init__(
        self,
        config: ClusterConfig,
        regions: Sequence[str],
        session: boto3.session.Session,
        log: Callable[[str], None],
    ) -> None:
        self._config = config
        self._regions = tuple(regions)
        self._session = session
        self._log = log
        self._template = load_template()
        self._template_urls: dict[str, str] = {}

    def run(self, identity: Identity, artifacts: Callable[[], Path]) -> dict[str, tuple[str, ...]]:
        """Check everything, then get the artifacts (a build takes a while), then deploy every region.

        Returns the topics each region's queue is subscribed to.
        """
        own = {region: topic_arn(identity, region, self._config.cluster) for region in self._regions}
        wanted = (*own.values(), *self._config.peer_topic_arns)
        check_plan(self._config, self._regions, wanted, self._template)
        for arn in self._config.peer_topic_arns:
            if not topic_exists(self._session, arn, identity):
                region, account = topic_region_and_account(arn)
                raise DeployError(
                    f"peer topic {arn} does not exist yet: account {account} deploys {region} first "
                    "(docs/deploying.md, Cross-account clusters)"
                )
        store = ArtifactStore(self._session, artifacts(), self._log)
        subscribed: dict[str, tuple[str, ...]] = {}
        # Pass 1, topics first: each stack subscribes to the topics that exist so far (its own included).
        for region in self._regions:
            existing = [
                arn for arn in wanted if arn == own[region] or topic_exists(self._session, arn, identity)
            ]
            subscribed[region] = self._deploy_region(region, own[region], existing, store)
        # Pass 2: the regions deployed before a newer region's topic existed subscribe to it now.
        for region in self._regions:
            if set(subscribed[region]) != set(wanted):
                subscribed[region] = self._deploy_region(region, own[region], wanted, store)
        return subscribed

    def _deploy_region(
        self, region: str, own: str, wanted: Sequence[str], store: ArtifactStore
    ) -> tuple[str, ...]:
        cfn = self._session.client("cloudformation", region_name=region)
        name = stack_name(self._config.cluster)
        # A stack still in review was never created, so it has no subscriptions yet.
        deployed = ""
        if stack_status(cfn, name) not in (None, "REVIEW_IN_PROGRESS"):
            deployed = stack_parameter(cfn, name, "TopicArns") or ""
        deployed_topics = [arn for arn in deployed.split(",") if arn]
        steps = subscription_steps(deployed_topics, topic_order(own, deployed_topics, wanted))
        for topics in steps:
            outcome = deploy_stack(
                cfn,
                name,
                TemplateUrl(TemplateURL=self._template_url(region, store)),
                stack_parameters(self._template, self._config, region, topics),
                {"sgmesh:cluster": self._config.cluster},
            )
            self._log(f"{region}: stack {name} {outcome}, subscribed to {len(topics)} topic(s)")
        return steps[-1]

    def _template_url(self, region: str, store: ArtifactStore) -> str:
        """The template transformed for the region's artifacts, uploaded once per region."""
        if region not in self._template_urls:
            artifacts = store.region(region)
            transformed = transform(self._template, region, artifacts.code_uri, artifacts.layer_uri)
            body = json.dumps(transformed, sort_keys=True).encode()
            self._template_urls[region] = store.template_url(region, body)
        return self._template_urls[region]
