"""`sgmesh teardown` and `make destroy`: a region leaves the mesh, retired first, then taken down."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from botocore.exceptions import WaiterError

from cloud.clients import ClientFactory
from cloud.dynamodb import Table
from cloud.ec2 import Ec2
from producers.bootstrap import build as build_producer
from schemas.errors import RuleConflictError, SgmeshError
from schemas.names import ARTIFACTS_STACK, stack_name, topic_region_and_account
from sgmesh.doctor import Doctor, Located, read_or_none
from sgmesh.leaving import lagging, revocations
from sgmesh.meshfile import MeshFile
from sgmesh.wiring import lifecycle_rule

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

    from producers.service import Published

FUNCTIONS = ("lifecycle", "trueup", "consumer")  # the template's sgmesh-<cluster>-<name> functions
CLUSTER_TAG = "sgmesh:cluster"  # the deploy tags each cluster's stack with it
REVOKE_ATTEMPTS = 3  # a consumer still running may change a group under us: re-read, revoke again
DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys


class TeardownIncomplete(SgmeshError):
    """A step could not finish; running the teardown again continues from where it stopped."""


def refusal(mesh: MeshFile, confirm: str | None) -> str | None:
    """Why the teardown must not start: a real account's region goes only when the operator names the
    cluster (a local mesh, on its embedded endpoint, needs no confirmation)."""
    if mesh.endpoint_url or confirm == mesh.cluster:
        return None
    given = f" (given {confirm!r})" if confirm else ""
    return f"nothing done: confirm the teardown by naming the cluster: --confirm {mesh.cluster}{given}"


def plan(mesh: MeshFile, region: str) -> list[str]:
    """What `run(region)` does, in order: printed before anything changes."""
    cluster, name = mesh.cluster, stack_name(mesh.cluster)
    entry = mesh.regions.get(region)
    steps = []
    if entry is not None:
        others = [other for other in mesh.regions if other != region]
        lists = f" and every reference to {', '.join(entry.prefix_list_ids)}" if entry.prefix_list_ids else ""
        steps += [
            f"stop {', '.join(f'{name}-{function}' for function in FUNCTIONS)} in {region} "
            "(their event sources, schedule and lifecycle rule disabled): none publishes or applies again",
            f"unsubscribe {region}'s queue from the cluster's {len(mesh.topic_arns)} topic(s)",
            f"publish the retirement of {', '.join(entry.asg_names)} (and any group its ledger knows) "
            f"from {entry.topic_arn}, and wait until {', '.join(others) or 'no other region'} applied it",
            f"revoke every rule marked sgmesh:{cluster}{lists} in {', '.join(entry.security_group_ids)}; "
            "every other rule stays",
        ]
    steps += [
        f"delete the stack {name} in {region} and wait for it",
        f"if no other sgmesh cluster is left in {region}: empty the artifact bucket and delete the stack "
        f"{ARTIFACTS_STACK}",
    ]
    if entry is not None:
        steps.append(f"then: {next_step(mesh, region)}")
    return steps


def next_step(mesh: MeshFile, region: str) -> str:
    """What the operator runs after the teardown: the other stacks still name the region's topic."""
    topic = mesh.region(region).topic_arn
    return (
        f"remove [regions.{region}] from the mesh file and deploy the other regions (make deploy "
        f"REGIONS=...), so their stacks stop naming {topic}; sgmesh doctor reports it as stale until then"
    )


class Teardown:
    """Takes one region out of a mesh (the operator's mesh file, or the deploy's view of its stacks):
    its producers and consumer stopped, its queue unsubscribed, the retirement of its groups published
    and applied by every other region, its groups left with the operators' rules only, its stack
    deleted, and the artifact bucket too when the region's last cluster leaves. Every step reads before
    it writes, so a second run after a failure finishes the job."""

    def __init__(
        self,
        mesh: MeshFile,
        clients: ClientFactory,
        log: Callable[[str], None],
        *,
        pause: Callable[[], None] = lambda: time.sleep(10),
        wait_attempts: int = 60,
    ) -> None:
        self._mesh = mesh
        self._clients = clients
        self._log = log
        self._pause = pause
        self._wait_attempts = wait_attempts

    def run(self, region: str) -> None:
        if region in self._mesh.regions:
            located = Doctor(self._mesh, self._clients).locate(region)
            self._stop_functions(region)
            if isinstance(located, Located):
                self._unsubscribe(region, located.wiring.queue_arn)
            published = self._retire(region)
            if published:
                self._await_retirement(region, published)
            self._revoke(region)
        else:
            self._log(f"{region}: no stack of {self._mesh.cluster}: nothing to retire or revoke")
        self._delete_stack(self._clients.cloudformation(region), region, stack_name(self._mesh.cluster))
        self._remove_artifacts(region)

    # -- the region stops taking part -----------------------------------------------------------------

    def _stop_functions(self, region: str) -> None:
        """Nothing invokes them any more: their queues' event sources and the rules that target them
        (the schedule) disabled, and the lifecycle rule. A true-up after the retirement would publish
        the region's members again. (Not a reserved concurrency of 0: an account at the default
        concurrency quota refuses any reservation.)"""
        lambda_, events = self._clients.lambda_(region), self._clients.events(region)
        for function in FUNCTIONS:
            name = f"{stack_name(self._mesh.cluster)}-{function}"
            described = read_or_none(partial(lambda_.get_function, FunctionName=name))
            if described is None:
                continue
            mappings = lambda_.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
            for mapping in mappings:
                if mapping.get("State") not in {"Disabled", "Disabling"}:
                    lambda_.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
            arn = described["Configuration"]["FunctionArn"]
            for rule in events.list_rule_names_by_target(TargetArn=arn)["RuleNames"]:
                events.disable_rule(Name=rule)
            self._log(f"{region}: {name} stopped (its event sources and rules disabled)")
        if read_or_none(partial(events.disable_rule, Name=lifecycle_rule(self._mesh.cluster))) is not None:
            self._log(f"{region}: {lifecycle_rule(self._mesh.cluster)} disabled")

    def _unsubscribe(self, region: str, queue_arn: str) -> None:
        """Off every topic: CloudFormation deletes the stack's subscriptions, but one the deploy's own
        pass (or a repair) made is no stack resource, and SNS keeps it after its queue is gone."""
        doctor = Doctor(self._mesh, self._clients)
        for topic in self._mesh.topic_arns:
            arn = doctor.subscription_arns(topic).get(queue_arn)
            if arn is None or arn == "PendingConfirmation":
                continue
            sns = self._clients.sns(topic_region_and_account(topic)[0])
            read_or_none(partial(sns.unsubscribe, SubscriptionArn=arn))
            self._log(f"{region}: queue unsubscribed from {topic}")

    def _retire(self, region: str) -> list[Published]:
        """The retirement of every group of the region, from its own topic (only SNS crosses regions)."""
        entry = self._mesh.region(region)
        sns, dynamodb = self._clients.sns(region), self._clients.dynamodb(region)
        if read_or_none(lambda: sns.get_topic_attributes(TopicArn=entry.topic_arn)) is None:
            self._log(f"{region}: its topic is gone: nothing more reaches the other regions from it")
            return []
        if read_or_none(lambda: dynamodb.describe_table(TableName=entry.table)) is None:
            self._log(f"{region}: its table is gone: no ledger to retire from")
            return []
        published = build_producer(self._mesh.settings(region), self._clients).retire_region()
        for item in published:
            self._log(f"{region}: {item.group} retired at version {item.version}")
        return published

    def _await_retirement(self, region: str, published: list[Published]) -> None:
        """Until every other region's table holds each retirement; their consumers apply it from their
        queues. Nothing is revoked or deleted before: a region that missed it would keep the members."""
        account = topic_region_and_account(self._mesh.region(region).topic_arn)[1]
        retired = {f"{account}/{region}/{item.group}": item.version for item in published}
        behind = []
        for attempt in range(self._wait_attempts):
            if attempt:
                self._pause()
            behind = lagging(retired, self._applied_versions(region))
            if not behind:
                self._log(f"{region}: every other region applied its retirement")
                return
        raise TeardownIncomplete(
            f"{region}'s retirement is not applied everywhere yet: {'; '.join(map(str, behind))}. "
            "Nothing was revoked or deleted; run the teardown again once those consumers caught up "
            "(sgmesh status)"
        )

    def _applied_versions(self, leaving: str) -> dict[str, dict[str, int]]:
        """Region -> source -> the version its table holds; a region whose table is gone left already."""
        applied = {}
        for region, entry in self._mesh.regions.items():
            if region == leaving:
                continue
            table = Table(self._clients.dynamodb(region), entry.table)
            states = read_or_none(partial(table.stored_states, self._mesh.cluster))
            if states is not None:
                applied[region] = {state.source.key: state.version for state in states}
        return applied

    def _revoke(self, region: str) -> None:
        entry = self._mesh.region(region)
        ec2 = Ec2(self._clients.ec2(region))
        for group_id in entry.security_group_ids:
            for _attempt in range(REVOKE_ATTEMPTS):
                rules = ec2.ingress_rules(group_id)
                doomed = revocations(self._mesh.cluster, rules, entry.prefix_list_ids)
                if not doomed:
                    self._log(
                        f"{region}: {group_id} holds no rule of {self._mesh.cluster} ({len(rules)} kept)"
                    )
                    break
                try:
                    ec2.revoke(group_id, doomed)
                except RuleConflictError:
                    continue
                self._log(
                    f"{region}: {group_id}: {len(doomed)} rule(s) revoked, {len(rules) - len(doomed)} kept"
                )
                break
            else:
                raise TeardownIncomplete(f"{region}: {group_id} kept changing while its rules were revoked")

    # -- what CloudFormation deletes, and what it cannot -------------------------------------------------

    def _delete_stack(self, cfn: CloudFormationClient, region: str, name: str) -> None:
        if _stack_status(cfn, name) is None:
            self._log(f"{region}: no stack {name}")
            return
        cfn.delete_stack(StackName=name)
        try:
            cfn.get_waiter("stack_delete_complete").wait(
                StackName=name, WaiterConfig={"Delay": 10, "MaxAttempts": 360}
            )
        except WaiterError:
            reasons = [
                f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason', '')}"
                for event in cfn.describe_stack_events(StackName=name)["StackEvents"]
                if event.get("ResourceStatus") == "DELETE_FAILED"
            ]
            raise TeardownIncomplete(
                f"{region}: stack {name} not deleted: {'; '.join(reasons) or 'see its events'}. Remove what "
                "blocks it (a reference to its prefix lists from another group?) and run the teardown again"
            ) from None
        self._log(f"{region}: stack {name} deleted")

    def _remove_artifacts(self, region: str) -> None:
        """The artifact bucket serves every cluster of the region: it goes with the last one. Versioned,
        it holds every version and delete marker, and CloudFormation deletes no bucket that is not empty."""
        cfn = self._clients.cloudformation(region)
        clusters = sorted(
            tag["Value"]
            for page in cfn.get_paginator("describe_stacks").paginate()
            for stack in page["Stacks"]
            for tag in stack.get("Tags", [])
            if tag["Key"] == CLUSTER_TAG and stack["StackStatus"] != "DELETE_COMPLETE"
        )
        if clusters:
            self._log(f"{region}: {ARTIFACTS_STACK} kept for cluster(s) {', '.join(clusters)}")
            return
        if _stack_status(cfn, ARTIFACTS_STACK) is None:
            return
        outputs = cfn.describe_stacks(StackName=ARTIFACTS_STACK)["Stacks"][0].get("Outputs", [])
        bucket = next((item["OutputValue"] for item in outputs if item["OutputKey"] == "BucketName"), None)
        if bucket:
            self._empty(region, bucket)
        self._delete_stack(cfn, region, ARTIFACTS_STACK)

    def _empty(self, region: str, bucket: str) -> None:
        s3 = self._clients.s3(region)
        versions: list[ObjectIdentifierTypeDef] = []

        def list_versions() -> None:
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    versions.append({"Key": item["Key"], "VersionId": item["VersionId"]})

        read_or_none(list_versions)
        for start in range(0, len(versions), DELETE_BATCH):
            s3.delete_objects(
                Bucket=bucket, Delete={"Objects": versions[start : start + DELETE_BATCH], "Quiet": True}
            )
        self._log(f"{region}: artifact bucket {bucket} emptied ({len(versions)} object version(s))")


def _stack_status(cfn: CloudFormationClient, name: str) -> str | None:
    """None when there is none (a deleted stack is described by its id only, yet some still show it)."""
    stacks = read_or_none(lambda: cfn.describe_stacks(StackName=name)["Stacks"])
    status = stacks[0]["StackStatus"] if stacks else None
    return None if status == "DELETE_COMPLETE" else status
