"""Service Quotas adapter: the account's applied rules-per-security-group quota, read once per process."""

from __future__ import annotations

import math
from typing import Any, Protocol

from aws_lambda_powertools.logging import Logger
from botocore.exceptions import BotoCoreError, ClientError

from schemas.quota import RuleBudget, rule_budget

SERVICE_CODE = "vpc"
# "Inbound or outbound rules per security group": AWS applies it to each address family separately.
RULES_PER_GROUP = "L-0EA8095F"


class ServiceQuotasClient(Protocol):
    """The one call sgmesh makes (boto3-stubs' service-quotas client is not a dependency)."""

    def get_service_quota(self, *, ServiceCode: str, QuotaCode: str) -> Any: ...


class RuleBudgetReader:
    """The rule budget for one region: the applied quota where Service Quotas answers (capped by the
    setting), else the setting.

    The first call reads the quota; every later call returns that same budget, so a consumer asks
    Service Quotas once per cold start. Any failure (no permission, no such quota in the region, an
    unreachable endpoint) falls back to the setting and is logged once, with its reason.
    """

    def __init__(self, client: ServiceQuotasClient, setting: int, logger: Logger) -> None:
        self._client = client
        self._setting = setting
        self._logger = logger
        self._budget: RuleBudget | None = None

    def __call__(self) -> RuleBudget:
        if self._budget is None:
            applied = self._applied_quota()
            if isinstance(applied, int):
                self._budget = rule_budget(self._setting, applied)
            else:
                self._logger.warning(
                    "could not read the rule quota from Service Quotas; using SGMESH_RULE_QUOTA",
                    extra={"quota_code": RULES_PER_GROUP, "reason": applied, "rule_quota": self._setting},
                )
                self._budget = rule_budget(self._setting, None, unreadable=applied)
        return self._budget

    def _applied_quota(self) -> int | str:
        """The applied quota, or why there is none."""
        try:
            response = self._client.get_service_quota(ServiceCode=SERVICE_CODE, QuotaCode=RULES_PER_GROUP)
        except ClientError as error:
            details = error.response.get("Error", {})
            return f"{details.get('Code', 'error')}: {details.get('Message', '')}".strip()
        except BotoCoreError as error:
            return str(error)
        quota = response.get("Quota", {})
        value = quota.get("Value")
        if isinstance(value, int | float) and math.isfinite(value) and value >= 1:
            return int(value)
        why = quota.get("ErrorReason") or {}
        return f"no usable value ({value!r}) {why.get('ErrorCode', '')} {why.get('ErrorMessage', '')}".strip()
