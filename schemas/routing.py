"""Which events a region's queue takes from a topic: the subscription filter policy, on message attributes."""

from __future__ import annotations

from typing import Any, Final

from schemas.events import ACKNOWLEDGEMENT_TYPE, RESYNC_REQUEST_TYPE, SNAPSHOT_TYPE

# The message attributes the topics' publishers set (cloud.sns) and the subscriptions filter on. They are
# not signed: a consumer reads the type and the sources from the signed message itself.
TYPE_ATTRIBUTE: Final = "type"
SOURCE_REGIONS_ATTRIBUTE: Final = "source_regions"  # String.Array: the regions of the acknowledged sources
FILTER_POLICY_SCOPE: Final = "MessageAttributes"


def subscription_filter_policy(subscriber_region: str) -> dict[str, Any]:
    """Snapshots and resync requests for every region; acknowledgements only for the regions whose
    sources they name (a region's launches wait for them; the others have no use for them); and every
    message without a `type` attribute, which is what a region on a release before acknowledgements
    publishes: during a rolling upgrade (or while a peer account upgrades later) its snapshots still
    reach the upgraded regions, whose consumers read the signed message itself.

    SNS recognises `$or` at the top level of a policy, matches a String.Array attribute when any of
    its values matches (docs.aws.amazon.com/sns/latest/dg/and-or-logic.html) and an absent attribute
    with `{"exists": false}` (.../attribute-key-matching.html); a policy takes at most 5 keys and 150
    value combinations (.../subscription-filter-policy-constraints.html): this one has 2 keys and 4
    combinations.
    """
    return {
        "$or": [
            {TYPE_ATTRIBUTE: [SNAPSHOT_TYPE, RESYNC_REQUEST_TYPE]},
            {TYPE_ATTRIBUTE: [ACKNOWLEDGEMENT_TYPE], SOURCE_REGIONS_ATTRIBUTE: [subscriber_region]},
            {TYPE_ATTRIBUTE: [{"exists": False}]},
        ]
    }
