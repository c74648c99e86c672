"""SNS as the deploy reads it: whether a cluster topic exists yet, and whether this account may see it."""

from __future__ import annotations

import boto3
from botocore.exceptions import ClientError

from infra.deploy.errors import DeployError
from schemas.names import topic_region_and_account


def topic_exists(session: boto3.session.Session, arn: str) -> bool:
    """True once the topic's stack created it; an inaccessible topic is a deploy error, not absence."""
    region, _account = topic_region_and_account(arn)
    sns = session.client("sns", region_name=region)
    try:
        sns.get_topic_attributes(TopicArn=arn)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("NotFound", "NotFoundException"):
            return False
        if code in ("AuthorizationError", "AuthorizationErrorException"):
            raise DeployError(
                f"no access to topic {arn}: its account must deploy with this account in peer_accounts"
            ) from None
        raise
    return True
