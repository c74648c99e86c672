"""The demo story and `sgmesh local`: sgmesh doing its job on a local multi-region mesh."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table

from sgmesh import render
from sgmesh.local.embedded import embedded_aws
from sgmesh.local.lifecycle import Completion
from sgmesh.local.mesh import LocalMesh
from sgmesh.local.stack import StackSpec
from sgmesh.meshfile import render as render_mesh_file
from sgmesh.operator import Operator

REFRESH_SECONDS = 0.25


@dataclass(frozen=True)
class Step:
    title: str
    act: Callable[[], object]


@dataclass(frozen=True)
class StepResult:
    title: str
    converged: bool
    wall_seconds: float
    simulated_seconds: float
    api_calls: int
    # How the step's launches left Pending:Wait: the admission barrier at work.
    launches: str = ""


def story(mesh: LocalMesh) -> list[Step]:
    """Scale out (each launch waits in Pending:Wait until every region admits it), scale in, a hand
    termination only the true-up sees, a region cut off (launches complete at the admission timeout)
    and back, then a hand-kept rule adopted (`sgmesh adopt --apply`) and revoked when its member leaves."""
    first, second, last = mesh.regions[0], mesh.regions[1], mesh.regions[-1]

    def cut_off_while_others_change() -> None:
        mesh.cut_off(last)
        mesh.scale(first, 3)
        mesh.scale(second, 3)

    def adopt_a_hand_kept_rule() -> None:
        # The member that scaling in removes first (the lowest instance id).
        member = sorted(mesh.members(first))[0]
        kept = mesh.keep_by_hand(second, member)
        operator = Operator(mesh.mesh_file(None), mesh.factory)
        adopted = sum(len(group.rules) for group in operator.adopt(second, apply=True))
        if adopted != kept:
            raise RuntimeError(f"adopted {adopted} of the {kept} hand-kept rules in {second}")

    def adopted_member_leaves() -> None:
        mesh.scale(first, len(mesh.members(first)) - 1)

    return [
        Step(f"start {len(mesh.regions)} regions, first true-up", mesh.trueup_everywhere),
        Step(f"scale {first} out to 5", lambda: mesh.scale(first, 5)),
        Step(f"scale {second} in to 1", lambda: mesh.scale(second, 1)),
        Step(
            f"terminate a {last} instance by hand (no lifecycle event)", lambda: mesh.terminate_by_hand(last)
        ),
        Step(
            f"cut {last} off; {first} and {second} -> 3 meanwhile (launches wait out the admission timeout)",
            cut_off_while_others_change,
        ),
        Step(f"bring {last} back", lambda: mesh.restore(last)),
        Step(
            f"a rule kept by hand in {second} for a {first} member: sgmesh adopt --apply",
            adopt_a_hand_kept_rule,
        ),
        Step(f"that {first} member leaves: its adopted rules go too", adopted_member_leaves),
    ]


def regions_table(mesh: LocalMesh) -> Table:
    """Every region's managed rules against the true membership, as AWS reports both."""
    expected = mesh.expected_permissions()
    table = Table(title="security groups vs true membership", title_justify="left")
    for column in ("region", "members", "managed rules", "expected rules", "state"):
        table.add_column(column)
    for region in mesh.regions:
        managed = mesh.managed_permissions(region)
        if mesh.mappings[region].paused:
            state = "[yellow]cut off[/]"
        elif managed == expected:
            state = "[green]converged[/]"
        else:
            state = f"[red]converging[/] (+{len(expected - managed)} -{len(managed - expected)})"
        table.add_row(region, str(len(mesh.members(region))), str(len(managed)), str(len(expected)), state)
    return table


def run_story(mesh: LocalMesh, on_progress: Callable[[int, Step], None] | None = None) -> list[StepResult]:
    results = []
    for index, step in enumerate(story(mesh)):
        completed = len(mesh.hooks.completions)
        step.act()
        outcome = mesh.run_until_converged(
            on_progress=partial(on_progress, index, step) if on_progress else None
        )
        results.append(
            StepResult(
                step.title,
                outcome.converged,
                outcome.wall_seconds,
                outcome.sim_seconds,
                outcome.api_calls,
                launches_text(mesh, mesh.hooks.completions[completed:]),
            )
        )
    return results


def launches_text(mesh: LocalMesh, completions: list[Completion]) -> str:
    """How the launches were completed: once every region acknowledged them, or at the admission timeout
    (naming the regions cut off, which could not acknowledge)."""
    launches = [c for c in completions if c.hook_name == mesh.spec.launch_hook]
    if not launches:
        return ""
    timeout = mesh.spec.admission_timeout_seconds
    waited = max(c.waited for c in launches)
    at_timeout = [c for c in launches if c.waited >= timeout]
    silent = ", ".join(region for region, mapping in mesh.mappings.items() if mapping.paused) or "a region"
    if at_timeout:
        return (
            f"{len(launches)} launched: CONTINUE at the admission timeout ({timeout} s) for "
            f"{len(at_timeout)}, {silent} did not acknowledge"
        )
    return f"{len(launches)} launched: CONTINUE once every region acknowledged, {waited:.0f} s at most"


def run_demo(console: Console, regions: tuple[str, ...], instances: int, *, as_json: bool) -> int:
    if len(regions) < 2:
        console.print("[red]sgmesh: the demo needs at least two regions[/]")
        return 2
    started = time.perf_counter()
    with _quiet_product_logs(), embedded_aws() as endpoint:
        mesh = LocalMesh(endpoint, regions, StackSpec(admission_barrier=True)).provision(instances)
        try:
            results = run_story(mesh) if as_json else _run_live(console, mesh)
            converged = all(result.converged for result in results) and mesh.converged()
            final = {region: len(mesh.managed_permissions(region)) for region in regions}
            calls = mesh.calls.counts()
        finally:
            mesh.close()
    verdict = {
        "converged": converged,
        "steps": [asdict(result) for result in results],
        "api_calls": sum(calls.values()),
        "api_calls_by_operation": dict(sorted(calls.items())),
        "managed_rules_per_region": final,
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    if as_json:
        render.print_json(console, verdict)
    else:
        console.print()
        console.print(_steps_table(results))
        word = "[green]converged[/]" if converged else "[red]NOT converged[/]"
        console.print(
            f"VERDICT: {word}: {sum(r.converged for r in results)}/{len(results)} steps converged, "
            f"{sum(r.wall_seconds for r in results):.1f} s to converge in all "
            f"({sum(r.simulated_seconds for r in results):.0f} s simulated), {verdict['api_calls']} API calls"
        )
    return 0 if converged else 1


def _run_live(console: Console, mesh: LocalMesh) -> list[StepResult]:
    steps = len(story(mesh))
    last_refresh = 0.0
    with Live(console=console, refresh_per_second=8, transient=False) as live:

        def show(index: int, step: Step) -> None:
            nonlocal last_refresh
            if time.perf_counter() - last_refresh < REFRESH_SECONDS:
                return
            last_refresh = time.perf_counter()
            spinner = Spinner("dots", text=f"step {index + 1}/{steps}: {step.title}")
            live.update(Group(spinner, regions_table(mesh)))

        results = run_story(mesh, show)
        live.update(regions_table(mesh))
    return results


def _steps_table(results: list[StepResult]) -> Table:
    table = Table(title="time to converge per step", title_justify="left")
    for column in ("step", "converged", "wall s", "simulated s", "API calls", "launches"):
        table.add_column(column)
    for result in results:
        table.add_row(
            result.title,
            "[green]yes[/]" if result.converged else "[red]no[/]",
            f"{result.wall_seconds:.2f}",
            f"{result.simulated_seconds:.0f}",
            str(result.api_calls),
            result.launches,
        )
    return table


def run_local(
    console: Console,
    regions: tuple[str, ...],
    instances: int,
    mesh_path: Path,
    duration: float | None,
    *,
    as_json: bool,
) -> int:
    """Start the mesh, converge it, write its mesh file, and keep it running for the operator CLI."""
    with _quiet_product_logs(), embedded_aws() as endpoint:
        mesh = LocalMesh(endpoint, regions, StackSpec(admission_barrier=True)).provision(instances)
        mesh.trueup_everywhere()
        outcome = mesh.run_until_converged()
        mesh_path.parent.mkdir(parents=True, exist_ok=True)
        mesh_path.write_text(render_mesh_file(mesh.mesh_file(endpoint)))
        if as_json:
            render.print_json(
                console, {"endpoint": endpoint, "mesh_file": str(mesh_path), "converged": outcome.converged}
            )
        else:
            console.print(regions_table(mesh))
            console.print(
                f"local mesh on {endpoint}; mesh file {mesh_path}\n"
                f"try: sgmesh status --mesh {mesh_path}   (Ctrl-C stops the mesh)"
            )
        with contextlib.suppress(KeyboardInterrupt):
            mesh.run_realtime(duration)
        mesh.close()
    return 0 if outcome.converged else 1


@contextmanager
def _quiet_product_logs() -> Iterator[None]:
    """The functions log every invocation as JSON for CloudWatch; on a terminal only problems matter."""
    loggers = [logging.getLogger(name) for name in ("sgmesh-producer", "sgmesh-consumer")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
