"""The `sgmesh` command: operate a mesh (local or on AWS) and run the local demo."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from rich.console import Console

from cloud.clients import ClientFactory
from schemas.errors import PermanentError, SettingsError, SgmeshError
from sgmesh import render
from sgmesh.meshfile import DEFAULT_MESH_FILE, MeshFile, load
from sgmesh.operator import Operator, verdict
from sgmesh.teardown import next_step, refusal
from sgmesh.teardown import plan as teardown_plan

if TYPE_CHECKING:
    from boto3.session import Session

    from consumers.review import Review
    from producers.service import Published

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_REGIONS = "us-east-1,us-west-2,eu-west-1"


def main(argv: Sequence[str] | None = None, clients: ClientFactory | None = None) -> int:
    """Run one command; `clients` (the tests') replaces the AWS clients the mesh file would give."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.clients = clients
    console = Console(soft_wrap=True)
    try:
        command: Callable[[argparse.Namespace, Console], int] = args.command
        return command(args, console)
    except NoCredentialsError:
        console.print(
            "[red]sgmesh: no AWS credentials found[/] (configure a profile, or use a local mesh file)"
        )
        return EXIT_USAGE
    except SettingsError as error:
        console.print(f"[red]sgmesh: {error}[/]")
        return EXIT_USAGE
    except (SgmeshError, ClientError, BotoCoreError) as error:
        kind = "refused" if isinstance(error, PermanentError) else "failed"
        console.print(f"[red]sgmesh: {args.name} {kind}: {error}[/]")
        return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of tables")
    mesh = argparse.ArgumentParser(add_help=False, parents=[common])
    mesh.add_argument(
        "--mesh",
        type=Path,
        default=Path(os.environ.get("SGMESH_MESH_FILE", DEFAULT_MESH_FILE)),
        help=f"mesh file (TOML); default $SGMESH_MESH_FILE or ./{DEFAULT_MESH_FILE}",
    )
    parser = argparse.ArgumentParser(prog="sgmesh", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(
        name: str,
        run: Callable[[argparse.Namespace, Console], int],
        help_text: str,
        parent: argparse.ArgumentParser,
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[parent], help=help_text, description=help_text)
        sub.set_defaults(command=run, name=name)
        return sub

    status = command(
        "status",
        _status,
        "per region: sources' versions, any behind; per group: drift, rules per family, quota and headroom",
        mesh,
    )
    status.add_argument("--region", action="append", help="only this region (repeatable)")
    status.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when any region drifts or any source is silent past the alarm's threshold",
    )
    command(
        "plan", _plan, "what a reconcile would authorize and revoke now (changes nothing)", mesh
    ).add_argument("--region", required=True)
    command(
        "trueup", _trueup, "publish fresh snapshots of every local group (the producer path)", mesh
    ).add_argument("--region", action="append", help="only this region (repeatable); default every region")
    command(
        "replay", _replay, "rebuild a region's desired state from its table and reconcile", mesh
    ).add_argument("--region", required=True)
    command(
        "resync",
        _resync,
        "publish a resync request on the region's topic: every region re-publishes its sources to it",
        mesh,
    ).add_argument("--region", required=True)
    doctor = command(
        "doctor",
        _doctor,
        "check every region's wiring (subscriptions, queue and topic policies, hooks, lifecycle rule); "
        "exit 1 when it is broken",
        mesh,
    )
    doctor.add_argument("--region", action="append", help="only this region (repeatable)")
    doctor.add_argument(
        "--repair",
        action="store_true",
        help="re-create lost subscriptions, reset their attributes to the template's, then check again",
    )
    teardown = command(
        "teardown",
        _teardown,
        "take a region out of the mesh: retire its groups everywhere, revoke its rules, delete its stack",
        mesh,
    )
    teardown.add_argument("--region", required=True)
    teardown.add_argument(
        "--confirm", metavar="CLUSTER", help="the cluster's name: required for a mesh on a real account"
    )
    adopt = command(
        "adopt",
        _adopt,
        "take over hand-made rules that are exactly ones sgmesh wants for a current member "
        "(dry run unless --apply)",
        mesh,
    )
    adopt.add_argument("--region", required=True)
    adopt.add_argument("--apply", action="store_true", help="rewrite their descriptions (default: only show)")
    events = command("events", _events, "a region's audit trail: applied snapshots and rule changes", mesh)
    events.add_argument("--region", required=True)
    events.add_argument("--source", help="only events of this source (account/region/group)")
    events.add_argument("--limit", type=int, default=50)

    for name, run, help_text in (
        ("local", _local, "run a local multi-region mesh on an embedded AWS (moto) until interrupted"),
        ("demo", _demo, "run the scripted demo story on a local mesh and print the verdict"),
    ):
        sub = command(name, run, help_text, common)
        sub.add_argument(
            "--regions", default=DEFAULT_REGIONS, help=f"comma-separated (default {DEFAULT_REGIONS})"
        )
        sub.add_argument("--instances", type=int, default=2, help="instances per region at the start")
    local = commands.choices["local"]
    local.add_argument("--write-mesh", type=Path, default=Path("build/local-mesh.toml"))
    local.add_argument("--for", dest="duration", type=float, help="stop after this many seconds")
    return parser


def _operator(args: argparse.Namespace) -> Operator:
    mesh = load(args.mesh)
    return Operator(mesh, args.clients or ClientFactory(_session(mesh)))


def _session(mesh: MeshFile) -> Session | None:
    """A local mesh file names its embedded endpoint, which a session of its own talks to; any other
    mesh is AWS, reached through boto3's own configuration (None: its default session)."""
    if not mesh.endpoint_url:
        return None
    from sgmesh.local.embedded import EndpointSession

    return EndpointSession(mesh.endpoint_url)


def _status(args: argparse.Namespace, console: Console) -> int:
    statuses = _operator(args).status(args.region)
    health = verdict(statuses)
    if args.json:
        # A list of regions, as before: scripts read the verdict from --check's exit code.
        render.print_json(console, statuses)
    else:
        render.status_tables(console, statuses)
        console.print(f"[{'green' if health.healthy else 'red'}]{health.line}[/]")
    return EXIT_FAILED if args.check and not health.healthy else EXIT_OK


def _plan(args: argparse.Namespace, console: Console) -> int:
    return _show_review(args, console, _operator(args).plan(args.region), "plan")


def _trueup(args: argparse.Namespace, console: Console) -> int:
    return _show_published(args, console, _operator(args).trueup(args.region))


def _replay(args: argparse.Namespace, console: Console) -> int:
    return _show_review(args, console, _operator(args).replay(args.region), "replayed")


def _resync(args: argparse.Namespace, console: Console) -> int:
    requested = _operator(args).resync(args.region)
    render.print_json(console, requested) if args.json else render.resync_table(console, requested)
    return EXIT_OK


def _show_review(args: argparse.Namespace, console: Console, review: Review, label: str) -> int:
    if args.json:
        render.print_json(console, render.review_json(review))
    else:
        render.plan_table(console, args.region, review, label)
    return EXIT_OK


def _show_published(args: argparse.Namespace, console: Console, published: list[Published]) -> int:
    render.print_json(console, published) if args.json else render.published_table(console, published)
    return EXIT_OK


def _doctor(args: argparse.Namespace, console: Console) -> int:
    diagnosis = _operator(args).doctor(args.region, repair=args.repair)
    if args.json:
        render.print_json(console, render.diagnosis_json(diagnosis))
    else:
        render.diagnosis_table(console, diagnosis)
    return EXIT_OK if diagnosis.healthy else EXIT_FAILED


def _teardown(args: argparse.Namespace, console: Console) -> int:
    operator = _operator(args)
    operator.mesh.region(args.region)
    console.print(f"sgmesh teardown of {args.region} ({operator.mesh.cluster}) will:")
    for number, step in enumerate(teardown_plan(operator.mesh, args.region), start=1):
        console.print(f"  {number}. {step}", markup=False)
    refused = refusal(operator.mesh, args.confirm)
    if refused:
        console.print(f"[red]sgmesh: {refused}[/]")
        return EXIT_USAGE
    operator.teardown(args.region, lambda line: console.print(line, markup=False))
    console.print(f"{args.region} left the mesh; next: {next_step(operator.mesh, args.region)}", markup=False)
    return EXIT_OK


def _adopt(args: argparse.Namespace, console: Console) -> int:
    adoptions = _operator(args).adopt(args.region, apply=args.apply)
    render.print_json(console, adoptions) if args.json else render.adoption_table(
        console, args.region, adoptions
    )
    return EXIT_OK


def _events(args: argparse.Namespace, console: Console) -> int:
    entries = _operator(args).events(args.region, args.source, args.limit)
    render.print_json(console, entries) if args.json else render.events_table(console, args.region, entries)
    return EXIT_OK


def _regions(args: argparse.Namespace) -> tuple[str, ...]:
    regions = tuple(region.strip() for region in args.regions.split(",") if region.strip())
    if not regions or len(set(regions)) != len(regions):
        raise SettingsError(f"--regions={args.regions!r}: give distinct, comma-separated region names")
    return regions


def _local(args: argparse.Namespace, console: Console) -> int:
    from sgmesh.demo import run_local

    return run_local(
        console, _regions(args), args.instances, args.write_mesh, args.duration, as_json=args.json
    )


def _demo(args: argparse.Namespace, console: Console) -> int:
    from sgmesh.demo import run_demo

    return run_demo(console, _regions(args), args.instances, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
