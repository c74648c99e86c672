"""Tear down sgmesh in some regions of a cluster: each retired everywhere first, then its stack deleted."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import boto3

from cloud.clients import ClientFactory
from infra.deploy.config import ClusterConfig
from infra.deploy.errors import DeployError
from infra.deploy.identity import caller_identity
from infra.deploy.meshfile import mesh_of
from schemas.errors import SgmeshError
from sgmesh.teardown import Teardown, plan, refusal


def main(
    argv: Sequence[str] | None = None,
    pause: Callable[[], None] = lambda: time.sleep(10),
    session: boto3.session.Session | None = None,
) -> int:
    """`pause` is the wait between two looks at the other regions' tables (the tests run consumers in
    it); `session`, boto3's default one unless given."""
    parser = argparse.ArgumentParser(prog="python -m infra.deploy.destroy", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="the deploy file (TOML)")
    parser.add_argument("--regions", required=True, help="comma-separated regions to tear down, in order")
    parser.add_argument("--confirm", metavar="CLUSTER", help="the cluster's name: nothing happens without it")
    args = parser.parse_args(argv)
    regions = [region.strip() for region in args.regions.split(",") if region.strip()]
    try:
        if not regions:
            raise DeployError("--regions names no region")
        config = ClusterConfig.load(args.config)
        unknown = [region for region in regions if region not in config.regions]
        if unknown:
            raise DeployError(f"--regions {','.join(unknown)}: not in {args.config} [regions]")
        session = session or boto3.session.Session()
        identity = caller_identity(session, regions[0])
        # Every region of the deploy file whose stack exists: the ones that must apply each retirement.
        mesh = mesh_of(config, list(config.regions), session)
        print(f"tearing down sgmesh cluster {config.cluster} in {', '.join(regions)} as {identity.arn}:")
        for region in regions:
            for number, step in enumerate(plan(mesh, region), start=1):
                print(f"  {region} {number}. {step}")
        refused = refusal(mesh, args.confirm)
        if refused:
            print(f"sgmesh destroy: {refused} (make destroy ... CONFIRM={config.cluster})", file=sys.stderr)
            return 2
        for region in regions:
            Teardown(mesh, ClientFactory(session), print, pause=pause).run(region)
            mesh = mesh_of(config, list(config.regions), session)
    except (DeployError, SgmeshError) as error:
        print(f"sgmesh destroy: {error}", file=sys.stderr)
        return 1
    rest = [region for region in mesh.regions if region not in regions]
    if rest:
        print(f"next: make deploy REGIONS={','.join(rest)} (the deploy file without {', '.join(regions)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
