"""The order of a cluster's first pass: which topics each region's stack can subscribe to when it deploys."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from schemas.names import topic_region_and_account


@dataclass(frozen=True)
class Step:
    """One stack deploy: the region, and the topics its queue subscribes to (its own first)."""

    region: str
    topics: tuple[str, ...]


def first_pass(
    own_topics: Mapping[str, str], peer_topics: Sequence[str], deployed: Collection[str]
) -> list[Step]:
    """Each region in order, subscribed to its own topic and to every other topic it can reach yet.

    A subscription names its dead-letter queue: this account's delivery DLQ in the topic's region,
    created by this account's stack there. So a topic can be subscribed once that stack exists: before
    the pass (`deployed`: the regions whose stack exists) or deployed earlier in it. This region's own
    stack does not count before its step, even for a peer topic in its region: its DLQ is created by
    the step itself. A region's own topic exists once its stack does; peer topics exist already (the
    deploy checks them first). The second pass gives every region the topics it could not reach here.
    """
    ready = set(deployed)
    steps = []
    for region, own in own_topics.items():
        others = [arn for arn in (*own_topics.values(), *peer_topics) if arn != own]
        reachable = tuple(arn for arn in others if topic_region_and_account(arn)[0] in ready)
        steps.append(Step(region, (own, *reachable)))
        ready.add(region)
    return steps
