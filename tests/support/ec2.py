"""Arrangements on the embedded EC2 that several test suites make the same way."""

from __future__ import annotations

from typing import Any


def reference_a_prefix_list(ec2: Any, group_id: str, *, port: int, max_entries: int) -> str:
    """An operator's rule on the group admitting `port` from a new IPv4 prefix list; returns its id."""
    listed = ec2.create_managed_prefix_list(
        PrefixListName=f"office-{port}", AddressFamily="IPv4", MaxEntries=max_entries
    )
    prefix_list_id: str = listed["PrefixList"]["PrefixListId"]
    ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": port,
                "ToPort": port,
                "PrefixListIds": [{"PrefixListId": prefix_list_id}],
            }
        ],
    )
    return prefix_list_id
