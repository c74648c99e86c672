"""The topic's name, known before the stack creates it (the stacks' own names: schemas/names.py)."""

from __future__ import annotations

from infra.deploy.identity import Identity


def topic_arn(identity: Identity, region: str, cluster: str) -> str:
    """Deterministic (the template names the topic so), hence known before the topic exists."""
    return f"arn:{identity.partition}:sns:{region}:{identity.account}:sgmesh-{cluster}"
