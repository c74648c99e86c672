"""Another writer changing a group between our read and our write: re-read, re-plan, converge."""

from __future__ import annotations

from typing import Any

from tests.support.mesh import Mesh


class RacingWriter:
    """Before the product's first Authorize in `region`, another consumer adds one of the same rules."""

    def __init__(self, mesh: Mesh, region: str) -> None:
        self.mesh = mesh
        self.region = region
        self.fired = False

    def register(self, client: Any) -> None:
        if client.meta.region_name == self.region and client.meta.service_model.service_name == "ec2":
            client.meta.events.register("before-parameter-build.ec2.AuthorizeSecurityGroupIngress", self.race)

    def race(self, params: dict[str, Any], **_: Any) -> None:
        if self.fired:
            return
        self.fired = True
        # Race the request's first rule: moto (unlike AWS) adds a request's rules one at a time until
        # the duplicate, so racing its last rule would leave nothing to re-plan.
        permission = params["IpPermissions"][0]
        protocol, from_port, to_port = permission["IpProtocol"], permission["FromPort"], permission["ToPort"]
        cidr = permission["IpRanges"][0]["CidrIp"]
        assert (protocol, from_port, to_port, cidr) in self.mesh.expected_permissions()
        self.mesh.ec2(self.region).authorize_security_group_ingress(
            GroupId=self.mesh.stacks[self.region].security_group_id,
            IpPermissions=[
                {
                    "IpProtocol": protocol,
                    "FromPort": from_port,
                    "ToPort": to_port,
                    "IpRanges": [{"CidrIp": cidr, "Description": f"sgmesh:{self.mesh.spec.cluster} raced"}],
                }
            ],
        )


def test_a_duplicate_from_a_concurrent_writer_is_replanned_and_converges(mesh: Mesh) -> None:
    racer = RacingWriter(mesh, "eu-west-1")
    mesh.factory.extend(racer)
    for region in mesh.regions:
        mesh.trueup(region)
    messages = mesh.drain("eu-west-1")

    response = mesh.deliver("eu-west-1", messages)

    assert racer.fired
    assert response["batchItemFailures"] == []
    authorizes = [c for c in mesh.invocations[-1].calls if c.operation == "AuthorizeSecurityGroupIngress"]
    assert len(authorizes) == 2, "the first Authorize hit the duplicate; one re-planned Authorize follows"
    assert mesh.managed_permissions("eu-west-1") == mesh.expected_permissions()
