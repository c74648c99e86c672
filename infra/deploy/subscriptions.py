"""The order of a queue's topic slots, so that an update never moves (and so drops) a subscription."""

from __future__ import annotations

from collections.abc import Sequence

from infra.deploy.errors import DeployError


def topic_order(own: str, deployed: Sequence[str], wanted: Sequence[str]) -> tuple[str, ...]:
    """This region's topic first, then the deployed topics in their slots, then the new ones."""
    kept = [arn for arn in deployed if arn in wanted and arn != own]
    new = [arn for arn in wanted if arn not in deployed and arn != own]
    return (own, *kept, *new)


def subscription_steps(deployed: Sequence[str], desired: Sequence[str]) -> list[tuple[str, ...]]:
    """The topic lists to deploy in turn so that no subscription moves to another slot in one update.

    A moved slot would make CloudFormation subscribe the queue again (SNS answers with the existing
    subscription) and then delete the old slot, which unsubscribes it. So when a removed topic shifts
    the ones after it, the first update drops every slot from there on and the second re-adds them.
    """
    target = tuple(desired)
    moved = any(arn in deployed and deployed.index(arn) != slot for slot, arn in enumerate(target))
    if not moved:
        return [target]
    first_change = next(
        slot for slot, arn in enumerate(target) if slot >= len(deployed) or deployed[slot] != arn
    )
    if first_change == 0:
        raise DeployError(f"deployed topics {list(deployed)} do not start with this region's own {target[0]}")
    return [target[:first_change], target]
