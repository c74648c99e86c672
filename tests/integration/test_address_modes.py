"""Every address mode and protocol end to end on moto: the groups hold exactly the mode's addresses
x the port specs, and a converged mesh re-plans nothing."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from sgmesh.local.stack import StackSpec
from tests.support.mesh import TWO_REGIONS, Mesh, Provisioner

Rule = tuple[str, int, int, str]
# (protocol, from, to) a port spec gives each family, written out from EC2's documentation: all
# traffic is "-1" without ports, ICMP carries type and code (-1 = any), IPv6 needs icmpv6.
Expected = dict[str, tuple[tuple[str, int, int], ...]]

RULE_CALLS = ("ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress")


class ModeMesh(Mesh):
    """The test mesh, observing each mode's addresses and IPv6 rules as well as public IPv4."""

    def instances(self, region: str) -> list[dict[str, Any]]:
        """The group's running instances, as EC2 describes them (independently of the product)."""
        ids = list(self.members(region))
        if not ids:
            return []
        reservations = self.ec2(region).describe_instances(InstanceIds=ids)["Reservations"]
        return [instance for reservation in reservations for instance in reservation["Instances"]]

    def addresses(self, family: str) -> set[str]:
        """Every member's addresses of one family (public, private or ipv6), as CIDRs, in all regions."""
        found: set[str] = set()
        for region in self.regions:
            for instance in self.instances(region):
                if family == "public":
                    found.add(f"{instance['PublicIpAddress']}/32")
                elif family == "private":
                    found.add(f"{instance['PrivateIpAddress']}/32")
                else:
                    found |= {
                        f"{address['Ipv6Address']}/128"
                        for interface in instance["NetworkInterfaces"]
                        for address in interface.get("Ipv6Addresses", [])
                    }
        return found

    def expected_rules(self, expected: Expected) -> set[Rule]:
        return {
            (protocol, from_port, to_port, cidr)
            for family, specs in expected.items()
            for cidr in self.addresses(family)
            for protocol, from_port, to_port in specs
        }

    def managed_rules(self, region: str) -> set[Rule]:
        marker = f"sgmesh:{self.spec.cluster}"
        return {
            (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule.get("CidrIpv4") or rule["CidrIpv6"])
            for rule in self.ingress(region)
            if rule.get("Description", "").split(" ")[0] == marker
        }

    def give_ipv6(self, region: str, *, skip: int = 0) -> None:
        """What a subnet with AssignIpv6AddressOnCreation does at launch (moto's Auto Scaling ignores
        it, and a launch template's Ipv6AddressCount): one IPv6 address per instance without one.

        `skip` leaves that many instances (the first by id) with IPv4 only.
        """
        ec2 = self.ec2(region)
        subnet = ec2.describe_subnets()["Subnets"][0]
        if not subnet.get("Ipv6CidrBlockAssociationSet"):
            vpc_block = ec2.associate_vpc_cidr_block(VpcId=subnet["VpcId"], AmazonProvidedIpv6CidrBlock=True)
            network = ipaddress.ip_network(vpc_block["Ipv6CidrBlockAssociation"]["Ipv6CidrBlock"])
            ec2.associate_subnet_cidr_block(
                SubnetId=subnet["SubnetId"], Ipv6CidrBlock=str(next(network.subnets(new_prefix=64)))
            )
        instances = sorted(self.instances(region), key=lambda instance: instance["InstanceId"])
        for instance in instances[skip:]:
            (interface, *_) = instance["NetworkInterfaces"]
            if not interface.get("Ipv6Addresses"):
                ec2.assign_ipv6_addresses(
                    NetworkInterfaceId=interface["NetworkInterfaceId"], Ipv6AddressCount=1
                )

    def trueup_and_settle(self) -> None:
        self.trueup_everywhere()
        self.settle()

    def assert_holds(self, expected: Expected) -> None:
        rules = self.expected_rules(expected)
        assert rules, "the scenario must put some rules in the groups"
        for region in self.regions:
            assert self.managed_rules(region) == rules, f"{region} does not hold the mode's rules"
            assert self.has_operator_rule(region), f"{region} lost the operator's rule"

    def assert_replans_empty(self) -> None:
        """A converged mesh trued up again reads every group and changes none."""
        mark = self.calls.mark()
        self.trueup_and_settle()
        counts = self.calls.counts(since=mark)
        assert counts["ec2:DescribeSecurityGroupRules"] >= len(self.regions)
        assert [call for call in RULE_CALLS if counts[call]] == []


def provision(aws: str, provisioned: Provisioner, address: str, ports: str, instances: int = 2) -> ModeMesh:
    return provisioned(ModeMesh(aws, TWO_REGIONS, StackSpec(address=address, ports=ports)), instances)


def test_ipv6_mode_admits_every_members_ipv6_addresses_and_follows_scaling(
    aws: str, provisioned: Provisioner
) -> None:
    # GIVEN an IPv6 mesh whose instances have IPv4 and IPv6 addresses
    mesh = provision(aws, provisioned, "ipv6", "tcp:7000-7001,icmp")
    for region in mesh.regions:
        mesh.give_ipv6(region)
    expected: Expected = {"ipv6": (("tcp", 7000, 7001), ("icmpv6", -1, -1))}

    # WHEN every region trues up
    mesh.trueup_and_settle()

    # THEN every group admits each IPv6 address (ICMP as icmpv6), and no IPv4 address
    mesh.assert_holds(expected)
    assert len(mesh.addresses("ipv6")) == 4

    # WHEN a region scales out and its new instance gets its IPv6 address
    region = mesh.regions[0]
    mesh.autoscaling(region).set_desired_capacity(
        AutoScalingGroupName=mesh.stacks[region].group_name, DesiredCapacity=3
    )
    mesh.give_ipv6(region)
    mesh.trueup_and_settle()

    # THEN the new address reaches every group, and a second true-up changes nothing
    assert len(mesh.addresses("ipv6")) == 5
    mesh.assert_holds(expected)
    mesh.assert_replans_empty()
    assert mesh.cross_region_writes() == []


def test_ipv6_mode_leaves_an_instance_without_ipv6_out(aws: str, provisioned: Provisioner) -> None:
    # GIVEN an IPv6 mesh where one instance per region has no IPv6 address yet
    mesh = provision(aws, provisioned, "ipv6", "tcp:9042")
    for region in mesh.regions:
        mesh.give_ipv6(region, skip=1)

    # WHEN every region trues up
    mesh.trueup_and_settle()

    # THEN only the instances with an IPv6 address are in the groups
    mesh.assert_holds({"ipv6": (("tcp", 9042, 9042),)})
    assert len(mesh.addresses("ipv6")) == 2
    # AND the producers published only those as members: a member always contributes rules
    published = [
        member["instance_id"]
        for region in mesh.regions
        for invocation in mesh.handled(region, "trueup")
        for call in invocation.calls
        if call.operation == "Publish"
        for member in json.loads(call.params["Message"])["members"]
    ]
    assert len(published) == 2


def test_private_mode_admits_private_addresses_only(aws: str, provisioned: Provisioner) -> None:
    # GIVEN a private-address mesh (peered VPCs or VPN)
    mesh = provision(aws, provisioned, "private", "tcp:7000-7001,udp:7002")

    # WHEN every region trues up
    mesh.trueup_and_settle()

    # THEN the groups admit the private addresses, none of the public ones
    mesh.assert_holds({"private": (("tcp", 7000, 7001), ("udp", 7002, 7002))})
    assert not any(cidr in mesh.addresses("public") for *_, cidr in mesh.managed_rules(mesh.regions[0]))
    mesh.assert_replans_empty()

    # WHEN an instance is terminated by hand, THEN its private address leaves every group
    mesh.terminate_by_hand(mesh.regions[1])
    mesh.trueup_and_settle()
    mesh.assert_holds({"private": (("tcp", 7000, 7001), ("udp", 7002, 7002))})


def test_dual_stack_admits_public_ipv4_and_ipv6_and_keeps_an_ipv4_only_member(
    aws: str,
    provisioned: Provisioner,
) -> None:
    # GIVEN a dual-stack mesh where one instance per region has no IPv6 address
    mesh = provision(aws, provisioned, "dual-stack", "tcp:7000-7001,icmp:8,icmpv6:128,all")
    for region in mesh.regions:
        mesh.give_ipv6(region, skip=1)

    # WHEN every region trues up
    mesh.trueup_and_settle()

    # THEN IPv4 addresses get tcp, echo over ICMP and all traffic; IPv6 ones tcp, echo over ICMPv6
    # and all traffic; the IPv4-only instances are members too
    mesh.assert_holds(
        {
            "public": (("tcp", 7000, 7001), ("icmp", 8, -1), ("-1", -1, -1)),
            "ipv6": (("tcp", 7000, 7001), ("icmpv6", 128, -1), ("-1", -1, -1)),
        }
    )
    assert (len(mesh.addresses("public")), len(mesh.addresses("ipv6"))) == (4, 2)
    mesh.assert_replans_empty()


@pytest.mark.parametrize(
    ("address", "ports", "expected"),
    [
        (
            "public",
            "icmp,icmp:3:4,all,udp:53",
            {"public": (("icmp", -1, -1), ("icmp", 3, 4), ("-1", -1, -1), ("udp", 53, 53))},
        ),
        ("private", "icmp:0,all", {"private": (("icmp", 0, -1), ("-1", -1, -1))}),
        (
            "ipv6",
            "icmpv6:1:4,all,icmp:8,tcp:0-65535",
            {"ipv6": (("icmpv6", 1, 4), ("-1", -1, -1), ("tcp", 0, 65535))},
        ),
    ],
    ids=["public", "private", "ipv6"],
)
def test_icmp_and_all_traffic_specs_converge_and_replan_empty(
    aws: str, provisioned: Provisioner, address: str, ports: str, expected: Expected
) -> None:
    # GIVEN a mesh with ICMP and all-traffic port specs
    mesh = provision(aws, provisioned, address, ports)
    if address == "ipv6":
        for region in mesh.regions:
            mesh.give_ipv6(region)

    # WHEN every region trues up, THEN the groups hold EC2's form of each spec
    mark = mesh.calls.mark()
    mesh.trueup_and_settle()
    mesh.assert_holds(expected)

    # AND the product sent all traffic without ports, ICMP with its type and code
    sent = {
        (permission["IpProtocol"], permission.get("FromPort"), permission.get("ToPort"))
        for call in mesh.calls.since(mark)
        if call.operation == "AuthorizeSecurityGroupIngress"
        for permission in call.params["IpPermissions"]
    }
    assert ("-1", None, None) in sent
    assert {entry for entry in sent if entry[0] != "-1"} == {
        spec for specs in expected.values() for spec in specs if spec[0] != "-1"
    }

    # AND a second round reads the groups back as converged: no authorize, no revoke
    mesh.assert_replans_empty()
