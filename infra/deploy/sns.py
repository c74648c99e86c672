"""SNS as the deploy reads it: whether a cluster topic exists yet, and why this account cannot see it."""

from __future__ import annotations

import boto3
from botocore.exceptions import ClientError

from infra.deploy.errors import DeployError
from infra.deploy.identity import Identity
from schemas.names import topic_region_and_account

NOT_FOUND = frozenset({"NotFound", "NotFoundException"})
DENIED = frozenset(
    {"AuthorizationError", "AuthorizationErrorException", "AccessDenied", "AccessDeniedException"}
)
# What a region answers to credentials it does not know: an opt-in region the account has not enabled.
UNKNOWN_CREDENTIALS = frozenset({"InvalidClientTokenId", "UnrecognizedClientException"})


def topic_exists(session: boto3.session.Session, arn: str, identity: Identity) -> bool:
    """True once the topic's stack created it; a topic this identity may not read is a deploy error
    that says why, not absence."""
    region, _account = topic_region_and_account(arn)
    sns = session.client("sns", region_name=region)
    try:
        sns.get_topic_attributes(TopicArn=arn)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in NOT_FOUND:
            return False
        if code in DENIED:
            raise DeployError(unreadable_topic(arn, identity, str(error))) from None
        if code in UNKNOWN_CREDENTIALS:
            raise DeployError(
                f"the credentials of {identity.arn} are not valid in {region} ({error}): if it is an "
                f"opt-in region, enable it for account {identity.account} first"
            ) from None
        raise
    return True


def unreadable_topic(arn: str, identity: Identity, refusal: str) -> str:
    """Why sns:GetTopicAttributes was refused, from whose policy could refuse it."""
    _region, owner = topic_region_and_account(arn)
    if owner == identity.account:
        return (
            f"{identity.arn} may not read this account's topic {arn} ({refusal}): the deploying "
            "identity needs sns:GetTopicAttributes on the cluster's topics (docs/deploying.md, What you need)"
        )
    return (
        f"account {owner} does not let account {identity.account} read its topic {arn} ({refusal}). "
        f"Account {owner} must deploy with {identity.account} in peer_accounts, with this version of "
        "sgmesh: stacks deployed before it let peers subscribe but never read the topic. If it already "
        f"does, {identity.arn} itself lacks sns:GetTopicAttributes on {arn}"
    )
