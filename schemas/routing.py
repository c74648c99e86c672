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
    sources they name (a region's launches wait for them; the others have no use for them).

    SNS recognises `$or` at the top level of a policy and matches a String.Array attribute when any of
    its values matches (docs.aws.amazon.com/sns/latest/dg/and-or-logic.html); a policy takes at most 5
    keys and 150 value combinations (.../subscription-filter-policy-constraints.html): this one has 2
    keys and 3 combinations. A message without a `type` attribute matches neither branch: every
    release that publishes to a topic sets it.
    """
    return {
        "$or": [
            {TYPE_ATTRIBUTE: [SNAPSHOT_TYPE, RESYNC_REQUEST_TYPE]},
            {TYPE_ATTRIBUTE: [ACKNOWLEDGEMENT_TYPE], SOURCE_REGIONS_ATTRIBUTE: [subscriber_region]},
        ]
    }
