"""Plays the prefix-list behaviour moto lacks: CurrentVersion and MaxEntries checks, resizing, and the
description of a rule that references a list.

moto 5.2 applies a ModifyManagedPrefixList whatever its CurrentVersion (on top of that old version's
entries, silently undoing the writes in between), ignores MaxEntries when entries are added and when
it is changed, and drops the Description of a rule that references a list. Here, on the product's EC2
clients: a modify with a stale CurrentVersion fails with PrefixListVersionMismatch, one that would
exceed MaxEntries with PrefixListMaxEntriesExceeded, one that resizes and changes entries at once
with InvalidParameterCombination, as AWS answers; a resize alone is applied to moto's list (it keeps
the version, as on AWS); and a referencing rule's description is kept and shown by
DescribeSecurityGroupRules. moto answers synchronously, so lists are never seen in modify-in-progress.
"""

from __future__ import annotations

from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from moto.backends import get_backend

from sgmesh.local.stack import ACCOUNT

Response = tuple[AWSResponse, dict[str, Any]]


class PrefixListChecks:
    """A client extension (see sgmesh.local.clients): register it on the product's client factory."""

    def __init__(self, account: str = ACCOUNT) -> None:
        self._account = account
        # Descriptions of referencing rules, by what AWS deduplicates a reference on: moto keeps none
        # (and its Authorize response lists only the last permission's rules, so not by rule id).
        self._descriptions: dict[tuple[Any, ...], str] = {}
        self.rejected: list[tuple[str, str]] = []  # (error code, prefix list id), for the tests

    def register(self, client: Any) -> None:
        if client.meta.service_model.service_name != "ec2":
            return
        region = client.meta.region_name
        modify: dict[str, Any] = {}
        authorize: dict[str, Any] = {}

        def capture(into: dict[str, Any]) -> Any:
            def handler(params: dict[str, Any], **_: Any) -> None:
                into.clear()
                into.update(params)

            return handler

        def check(**_: Any) -> Response | None:
            return self._check_modify(region, dict(modify))

        def keep_descriptions(**_: Any) -> None:
            self._keep_descriptions(authorize)

        def show_descriptions(parsed: dict[str, Any], **_: Any) -> None:
            for rule in parsed.get("SecurityGroupRules", []):
                if "PrefixListId" not in rule or "Description" in rule:
                    continue
                description = self._descriptions.get(
                    _reference_key(rule["GroupId"], rule, rule["PrefixListId"])
                )
                if description is not None:
                    rule["Description"] = description

        events = client.meta.events
        events.register("before-parameter-build.ec2.ModifyManagedPrefixList", capture(modify))
        events.register("before-call.ec2.ModifyManagedPrefixList", check)
        events.register("before-parameter-build.ec2.AuthorizeSecurityGroupIngress", capture(authorize))
        events.register("after-call.ec2.AuthorizeSecurityGroupIngress", keep_descriptions)
        events.register("after-call.ec2.DescribeSecurityGroupRules", show_descriptions)

    def _check_modify(self, region: str, request: dict[str, Any]) -> Response | None:
        # moto's own model (its version is optional: AWS-managed lists have none).
        prefix_list: Any = get_backend("ec2")[self._account][region].managed_prefix_lists.get(
            request["PrefixListId"]
        )
        if prefix_list is None:
            return None  # moto's own InvalidPrefixListID answer
        changes_entries = bool(request.get("AddEntries") or request.get("RemoveEntries"))
        version = request.get("CurrentVersion")
        if "MaxEntries" in request and changes_entries:
            return self._error(
                "InvalidParameterCombination",
                "You cannot modify the entries of a prefix list and modify the size of a prefix list "
                "at the same time.",
                prefix_list.id,
            )
        if version is not None and version != prefix_list.version:
            return self._error(
                "PrefixListVersionMismatch",
                "The prefix list has the incorrect version number.",
                prefix_list.id,
            )
        latest: list[dict[str, str]] = prefix_list.entries.get(prefix_list.version, [])
        current = {entry["Cidr"] for entry in latest}
        if "MaxEntries" in request:
            if request["MaxEntries"] < len(current):
                return self._error(
                    "InvalidParameterValue",
                    f"The maximum number of entries ({request['MaxEntries']}) is less than the number of "
                    f"entries in the prefix list ({len(current)}).",
                    prefix_list.id,
                )
            prefix_list.max_entries = request["MaxEntries"]
            prefix_list.state = "modify-complete"
            return _ok({"PrefixList": _described(prefix_list)})
        after = (current - {entry["Cidr"] for entry in request.get("RemoveEntries", [])}) | {
            entry["Cidr"] for entry in request.get("AddEntries", [])
        }
        if prefix_list.max_entries is not None and len(after) > int(prefix_list.max_entries):
            return self._error(
                "PrefixListMaxEntriesExceeded",
                f"The prefix list would have {len(after)} entries, over its maximum of "
                f"{prefix_list.max_entries}.",
                prefix_list.id,
            )
        return None  # valid: moto applies it

    def _keep_descriptions(self, request: dict[str, Any]) -> None:
        for permission in request.get("IpPermissions", []):
            for item in permission.get("PrefixListIds", []):
                self._descriptions[_reference_key(request["GroupId"], permission, item["PrefixListId"])] = (
                    item.get("Description", "")
                )

    def _error(self, code: str, message: str, prefix_list_id: str) -> Response:
        self.rejected.append((code, prefix_list_id))
        return AWSResponse("", 400, HTTPHeaders(), None), {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }


def _reference_key(group_id: str, permission: dict[str, Any], prefix_list_id: str) -> tuple[Any, ...]:
    return (
        group_id,
        permission["IpProtocol"],
        permission.get("FromPort"),
        permission.get("ToPort"),
        prefix_list_id,
    )


def _ok(body: dict[str, Any]) -> Response:
    return AWSResponse("", 200, HTTPHeaders(), None), {**body, "ResponseMetadata": {"HTTPStatusCode": 200}}


def _described(prefix_list: Any) -> dict[str, Any]:
    return {
        "PrefixListId": prefix_list.id,
        "AddressFamily": prefix_list.address_family,
        "State": prefix_list.state,
        "PrefixListArn": prefix_list.prefix_list_arn,
        "PrefixListName": prefix_list.prefix_list_name or "",
        "MaxEntries": int(prefix_list.max_entries),
        "Version": prefix_list.version,
        "OwnerId": prefix_list.owner_id,
    }
