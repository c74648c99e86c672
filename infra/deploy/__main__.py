"""Deploy sgmesh to N regions: one stack per region, topics first, then every queue onto every topic."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import boto3

from infra.build import DEFAULT_OUT, BuildError, build
from infra.deploy.config import ClusterConfig
from infra.deploy.deployment import Deployment
from infra.deploy.errors import DeployError
from infra.deploy.identity import caller_identity
from infra.deploy.meshfile import write_mesh_file
from sgmesh.meshfile import DEFAULT_MESH_FILE


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="the deploy file (TOML)")
    parser.add_argument("--regions", required=True, help="comma-separated regions of the cluster, in order")
    parser.add_argument(
        "--mesh-file",
        type=Path,
        default=Path(DEFAULT_MESH_FILE),
        help=f"where the operator's mesh file goes (default ./{DEFAULT_MESH_FILE}); an edited one is kept",
    )
    parser.add_argument(
        "--artifacts", type=Path, help="use these built artifacts (code.zip, layer.zip) instead of building"
    )
    args = parser.parse_args(argv)
    regions = [region.strip() for region in args.regions.split(",") if region.strip()]
    try:
        if not regions:
            raise DeployError("--regions names no region")
        config = ClusterConfig.load(args.config)
        session = boto3.session.Session()
        identity = caller_identity(session, regions[0])
        print(f"deploying sgmesh cluster {config.cluster} to {', '.join(regions)} as {identity.arn}")
        deployment = Deployment(config, regions, session, print)
        deployed = deployment.run(identity, lambda: args.artifacts or _build(DEFAULT_OUT))
        written = write_mesh_file(args.mesh_file, deployed.mesh)
    except DeployError as error:
        print(f"sgmesh deploy: {error}", file=sys.stderr)
        return 2
    for region, topics in deployed.subscribed.items():
        print(f"{region}: queue subscribed to {', '.join(topics)}")
    print(written.report())
    for line in deployed.wiring.lines():
        print(line)
    return 0 if deployed.wiring.healthy else 1


def _build(out: Path) -> Path:
    try:
        print(build(out).report())
    except BuildError as error:
        raise DeployError(str(error)) from None
    return out


if __name__ == "__main__":
    sys.exit(main())
