"""A security group's rule budget: the quota a plan must fit, and where that number came from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class QuotaOrigin(StrEnum):
    """Which of the two readings bounds the budget."""

    SERVICE_QUOTAS = "service-quotas"
    SETTING = "setting"


@dataclass(frozen=True)
class RuleBudget:
    """Inbound rules allowed per group and address family.

    `service_quota` is the account's applied quota in the region, or None with `unreadable` saying
    why it could not be read; `setting` is SGMESH_RULE_QUOTA.
    """

    quota: int
    origin: QuotaOrigin
    setting: int
    service_quota: int | None = None
    unreadable: str | None = None


def rule_budget(setting: int, service_quota: int | None, unreadable: str | None = None) -> RuleBudget:
    """The smaller of the two: AWS refuses any rule over its applied quota, and the setting is the
    operator's own cap (and the only number there is when Service Quotas cannot be read)."""
    if service_quota is not None and service_quota <= setting:
        return RuleBudget(service_quota, QuotaOrigin.SERVICE_QUOTAS, setting, service_quota)
    return RuleBudget(setting, QuotaOrigin.SETTING, setting, service_quota, unreadable)
