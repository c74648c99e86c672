"""The condition keys AWS documents for the actions sgmesh's policies grant: what a request carries.

A condition on a key that a request does not carry is false (unless its operator ends in IfExists),
so a statement with such a condition never grants that action. moto evaluates no policy: this table,
read from AWS's pages, is what the template is checked against (tests/infra/test_policy_conditions.py).
A key or an action missing here fails that test until its page is read and cited here.
"""

from __future__ import annotations

import fnmatch

# IAM User Guide, "AWS global condition context keys"
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html):
# aws:SecureTransport "is always included in the request context".
IN_EVERY_REQUEST = frozenset({"aws:securetransport"})

# Service Authorization Reference, "Actions, resources, and condition keys for <service>", the
# Condition keys column of each action (keys lowercased, as IAM compares them).
# - Amazon SNS (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsns.html),
#   and "Amazon SNS API permissions: Actions and resources reference"
#   (https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-language-api-permissions-reference.html):
#   sns:Endpoint and sns:Protocol are set by Subscribe requests only.
# - Amazon SQS (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsqs.html):
#   no service-specific key on the message actions.
# - AWS KMS (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awskeymanagementservice.html):
#   the cryptographic operations carry the encryption context; DescribeKey carries none.
# - Amazon DynamoDB (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html):
#   the item actions carry dynamodb:LeadingKeys.
_KMS_CRYPTOGRAPHIC = frozenset(
    {
        "kms:calleraccount",
        "kms:encryptionalgorithm",
        "kms:encryptioncontext:*",
        "kms:encryptioncontextkeys",
        "kms:requestalias",
        "kms:viaservice",
    }
)
_DYNAMODB_ITEMS = frozenset(
    {
        "dynamodb:attributes",
        "dynamodb:enclosingoperation",
        "dynamodb:leadingkeys",
        "dynamodb:returnconsumedcapacity",
        "dynamodb:returnvalues",
        "dynamodb:select",
    }
)
ACTION_KEYS: dict[str, frozenset[str]] = {
    "sns:subscribe": frozenset({"sns:endpoint", "sns:protocol"}),
    "sns:publish": frozenset(),
    "sns:gettopicattributes": frozenset(),
    "sns:listsubscriptionsbytopic": frozenset(),
    "sqs:sendmessage": frozenset(),
    "kms:decrypt": _KMS_CRYPTOGRAPHIC,
    "kms:encrypt": _KMS_CRYPTOGRAPHIC,
    "kms:generatedatakey": _KMS_CRYPTOGRAPHIC,
    "kms:generatedatakeypair": _KMS_CRYPTOGRAPHIC,
    "kms:generatedatakeypairwithoutplaintext": _KMS_CRYPTOGRAPHIC,
    "kms:generatedatakeywithoutplaintext": _KMS_CRYPTOGRAPHIC,
    "kms:reencryptfrom": _KMS_CRYPTOGRAPHIC,
    "kms:reencryptto": _KMS_CRYPTOGRAPHIC,
    "kms:describekey": frozenset({"kms:calleraccount", "kms:requestalias", "kms:viaservice"}),
    "dynamodb:query": _DYNAMODB_ITEMS,
    "dynamodb:updateitem": _DYNAMODB_ITEMS,
    "dynamodb:putitem": _DYNAMODB_ITEMS,
    "dynamodb:batchwriteitem": _DYNAMODB_ITEMS,
}

_SOURCE = frozenset({"aws:sourcearn", "aws:sourceaccount"})
# aws:SourceArn and aws:SourceAccount are in the context "only if accessing a resource triggers an AWS
# service to call another AWS service on behalf of the resource owner" (the global keys page), and only
# where that service sets them. Keyed by (calling service, action prefix).
ON_BEHALF_KEYS: dict[tuple[str, str], frozenset[str]] = {
    # SNS to SQS: "Subscribing an Amazon SQS queue to an Amazon SNS topic", the queue policy example
    # (https://docs.aws.amazon.com/sns/latest/dg/subscribe-sqs-queue-to-sns-topic.html).
    ("sns", "sqs:sendmessage"): _SOURCE,
    # EventBridge to SQS: "Using resource-based policies for Amazon EventBridge", Amazon SQS permissions
    # (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sqs-permissions).
    ("events", "sqs:sendmessage"): _SOURCE,
    # SNS delivering to an encrypted queue: not on an AWS page; the AWS CDK sets aws:SourceArn here
    # (aws/aws-cdk#20339). Listed in docs/security.md under "Unproven on AWS".
    ("sns", "kms:"): _SOURCE,
    # EventBridge to an encrypted target: "Amazon SNS key management", Enable compatibility between
    # event sources from AWS services and encrypted topics
    # (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services)
    # documents aws:SourceArn and aws:SourceAccount as unsupported there; the same is assumed for SQS.
    ("events", "kms:"): frozenset(),
    # CloudWatch Logs names the log group in the encryption context, which its requests carry
    # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html).
    ("logs", "kms:"): frozenset(),
}


def actions_matching(pattern: str) -> list[str]:
    """The actions of the table a policy's action (or wildcard) names; none for an unknown one."""
    return [action for action in ACTION_KEYS if fnmatch.fnmatchcase(action, pattern.lower())]


def carried_keys(action: str, calling_service: str | None) -> frozenset[str]:
    """The keys a request for this action carries, when made by this service (None: by an identity)."""
    keys = IN_EVERY_REQUEST | ACTION_KEYS[action]
    if calling_service is None:
        return keys
    behalf = [
        found
        for (service, prefix), found in ON_BEHALF_KEYS.items()
        if service == calling_service and action.startswith(prefix)
    ]
    assert behalf, f"no page read yet for {calling_service} calling {action}: add it to ON_BEHALF_KEYS"
    return keys | behalf[0]


def is_carried(key: str, carried: frozenset[str]) -> bool:
    return any(fnmatch.fnmatchcase(key.lower(), pattern) for pattern in carried)
