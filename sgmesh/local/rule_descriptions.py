"""Plays UpdateSecurityGroupRuleDescriptionsIngress by rule id, which moto 5.2 accepts and ignores.

moto handles the call's IpPermissions form only: given SecurityGroupRuleDescriptions (what `sgmesh
adopt` sends) it answers success and changes nothing. Installed on the embedded AWS (in the process
that serves it, so every client, the CLI's included, sees it): a request by rule id gives each named
inbound rule of the group its new description, as AWS does, or fails whole with
InvalidSecurityGroupRuleId.NotFound when one is not an inbound rule of the group. Every request it
serves is kept in `REQUESTS`, for the tests to assert what the product sent.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.exceptions import InvalidSecurityGroupRuleIdNotFoundError
from moto.ec2.responses.security_groups import SecurityGroups

# (region, GroupId, {rule id: description}) of every request by rule id, in order.
REQUESTS: list[tuple[str, str, dict[str, str]]] = []
_MOTOS_OWN = SecurityGroups.update_security_group_rule_descriptions_ingress


def _by_rule_id(self: Any) -> ActionResult:
    descriptions = self._get_param("SecurityGroupRuleDescriptions", [])
    if not descriptions:
        result: ActionResult = _MOTOS_OWN(self)
        return result
    group_id = self._get_param("GroupId")
    group = self.ec2_backend.get_security_group_by_name_or_id(group_id)
    rules = {rule.id: rule for rule in group.ingress_rules}
    wanted = {item["SecurityGroupRuleId"]: item.get("Description", "") for item in descriptions}
    for rule_id in wanted:
        if rule_id not in rules:
            raise InvalidSecurityGroupRuleIdNotFoundError(rule_id)
    for rule_id, description in wanted.items():
        rules[rule_id].ip_range["Description"] = description
    REQUESTS.append((self.region, group_id, wanted))
    return EmptyResult()


def install() -> None:
    """Idempotent: the class attribute is replaced once per process."""
    SecurityGroups.update_security_group_rule_descriptions_ingress = _by_rule_id  # type: ignore[method-assign]
