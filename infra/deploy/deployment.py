"""The deploy of one cluster to N regions of one account: topics first, then every queue onto every topic."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from cloud.clients import ClientFactory
from infra.deploy.artifacts import ArtifactStore
from infra.deploy.checks import check_deployed, check_plan
from infra.deploy.cloudformation import (
    TemplateUrl,
    deploy_stack,
    deployed_parameters,
    physical_id,
)
from infra.deploy.config import ClusterConfig
from infra.deploy.errors import DeployError
from infra.deploy.identity import Identity
from infra.deploy.meshfile import mesh_of
from infra.deploy.names import topic_arn
from infra.deploy.plan import first_pass
from infra.deploy.sns import topic_exists
from infra.deploy.subscriptions import subscription_steps, topic_order
from infra.deploy.template import load_template, stack_parameters
from infra.deploy.transform import transform
from schemas.names import queue_arn, stack_name, topic_region_and_account
from sgmesh.doctor import Doctor
from sgmesh.meshfile import MeshFile
from sgmesh.wiring import Diagnosis

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient


@dataclass(frozen=True)
class Deployed:
    """What a deploy left: each region's topics, the deployed regions as a mesh file, and the doctor's
    verdict on their wiring after the subscription pass."""

    subscribed: dict[str, tuple[str, ...]]
    mesh: MeshFile
    wiring: Diagnosis


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
        self._name = stack_name(config.cluster)
        # This account's delivery DLQ in each region whose stack exists, as the stacks are deployed.
        self._dead_letters: dict[str, str] = {}

    def run(self, identity: Identity, artifacts: Callable[[], Path]) -> Deployed:
        """Check everything, then get the artifacts (a build takes a while), then deploy every region,
        then make sure of the subscriptions and check the wiring."""
        own = {region: topic_arn(identity, region, self._config.cluster) for region in self._regions}
        peers = self._config.peer_topic_arns
        check_plan(self._config, own, self._template)
        deployed = {region: deployed_parameters(self._cfn(region), self._name) for region in self._regions}
        check_deployed(
            self._config, {region: found for region, found in deployed.items() if found is not None}
        )
        for arn in peers:
            if not topic_exists(self._session, arn, identity):
                region, account = topic_region_and_account(arn)
                raise DeployError(
                    f"peer topic {arn} does not exist yet: account {account} deploys {region} first "
                    "(docs/deploying.md, Cross-account clusters)"
                )
        store = ArtifactStore(self._session, artifacts(), self._log)
        existing = [region for region, found in deployed.items() if found is not None]
        for region in existing:
            self._dead_letters[region] = self._dead_letter_arn(region, identity)
        subscribed: dict[str, tuple[str, ...]] = {}
        # Pass 1, topics first: each stack subscribes to the topics whose region has its DLQ so far.
        for step in first_pass(own, peers, existing):
            subscribed[step.region] = self._deploy_region(identity, step.region, step.topics, store)
        # Pass 2: the regions deployed before a topic (or its region's DLQ) existed subscribe to it now.
        wanted = (*own.values(), *peers)
        for region in self._regions:
            subscribed[region] = self._deploy_region(identity, region, wanted, store, only_if_changed=True)
        mesh = mesh_of(self._config, self._regions, self._session)
        return Deployed(subscribed, mesh, self._subscription_pass(mesh))

    def _subscription_pass(self, mesh: MeshFile) -> Diagnosis:
        """Re-create every subscription SNS lost, which no stack parameter shows: a topic deleted and
        created again drops its subscriptions while every stack stays "unchanged". Then the doctor's
        verdict on the whole wiring."""
        doctor = Doctor(mesh, ClientFactory(self._session))
        diagnosis = doctor.repair(doctor.diagnose())
        for finding in diagnosis.repaired:
            self._log(
                f"{finding.region}: queue subscribed again to {finding.subject} (it was {finding.problem})"
            )
        return diagnosis

    def _deploy_region(
        self,
        identity: Identity,
        region: str,
        wanted: Sequence[str],
        store: ArtifactStore,
        only_if_changed: bool = False,
    ) -> tuple[str, ...]:
        cfn = self._cfn(region)
        current = deployed_parameters(cfn, self._name) or {}
        own = topic_arn(identity, region, self._config.cluster)
        deployed_topics = [arn for arn in current.get("TopicArns", "").split(",") if arn]
        steps = subscription_steps(deployed_topics, topic_order(own, deployed_topics, wanted))
        for topics in steps:
            parameters = self._parameters(region, topics)
            if only_if_changed and all(current.get(key) == value for key, value in parameters.items()):
                continue
            outcome = deploy_stack(
                cfn,
                self._name,
                TemplateUrl(TemplateURL=self._template_url(region, store)),
                parameters,
                {"sgmesh:cluster": self._config.cluster},
            )
            self._dead_letters[region] = self._dead_letter_arn(region, identity)
            self._log(f"{region}: stack {self._name} {outcome}, subscribed to {len(topics)} topic(s)")
        return steps[-1]

    def _parameters(self, region: str, topics: Sequence[str]) -> dict[str, str]:
        """The stack's parameters: each topic after the first with this account's DLQ in its region."""
        dead_letters = [self._dead_letters[topic_region_and_account(arn)[0]] for arn in topics[1:]]
        return stack_parameters(self._template, self._config, region, topics, dead_letters)

    def _dead_letter_arn(self, region: str, identity: Identity) -> str:
        """The ARN of the region's delivery DLQ, from its URL (the queue's physical id)."""
        url = physical_id(self._cfn(region), self._name, "DeliveryDeadLetterQueue")
        return queue_arn(url, region, identity.partition)

    def _cfn(self, region: str) -> CloudFormationClient:
        return self._session.client("cloudformation", region_name=region)

    def _template_url(self, region: str, store: ArtifactStore) -> str:
        """The template transformed for the region's artifacts, uploaded once per region."""
        if region not in self._template_urls:
            artifacts = store.region(region)
            transformed = transform(self._template, region, artifacts.code_uri, artifacts.layer_uri)
            body = json.dumps(transformed, sort_keys=True).encode()
            self._template_urls[region] = store.template_url(region, body)
        return self._template_urls[region]
