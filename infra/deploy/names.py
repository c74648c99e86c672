"""The names a cluster's stack gives what it creates, known before the stack exists."""

from __future__ import annotations

from infra.deploy.identity import Identity

# The stack of each region's artifact bucket, which every cluster of the account shares.
ARTIFACTS_STACK = "sgmesh-artifacts"


def stack_name(cluster: str) -> str:
    return f"sgmesh-{cluster}"


def topic_arn(identity: Identity, region: str, cluster: str) -> str:
    """Deterministic (the template names the topic so), hence known before the topic exists."""
    return f"arn:{identity.partition}:sns:{region}:{identity.account}:sgmesh-{cluster}"
