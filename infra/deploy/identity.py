"""Who deploys: the caller's account and partition, or a clear stop before anything else happens."""

from __future__ import annotations

from dataclasses import dataclass

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from infra.deploy.errors import DeployError

NO_CREDENTIALS = (
    "no AWS credentials found. Configure them before deploying, e.g. `export AWS_PROFILE=<profile>` "
    "(after `aws sso login --profile <profile>`) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
)


@dataclass(frozen=True)
class Identity:
    account: str
    partition: str
    arn: str


def caller_identity(session: boto3.session.Session, region: str) -> Identity:
    """Who deploys; fails with a clear message before anything else happens when nobody can."""
    if session.get_credentials() is None:
        raise DeployError(NO_CREDENTIALS)
    try:
        identity = session.client("sts", region_name=region).get_caller_identity()
    except NoCredentialsError:
        raise DeployError(NO_CREDENTIALS) from None
    except (ClientError, BotoCoreError) as error:
        raise DeployError(f"the AWS credentials do not work ({error}); refresh them, then deploy") from None
    return Identity(account=identity["Account"], partition=identity["Arn"].split(":")[1], arn=identity["Arn"])
