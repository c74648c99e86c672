"""`make bench`: every scenario at full size, printed as one table and written to build/bench.json.

The call counts are independent jobs (one side of one scenario each) shared by worker processes, each
with its own embedded AWS, reset between jobs: moto keeps its state per process. The timings run
afterwards, alone, so that no job competes with what they measure.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import logging
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sgmesh.local.embedded import embedded_aws
from tests.bench import scenarios

OUTPUT = Path("build/bench.json")
Row = tuple[str, str, str, str]
Job = partial[Any]  # a scenario's side, called with the worker's endpoint
# (label, one by one, buffered, barrier): the buffering queue is how sgmesh deploys; without it each
# lifecycle event is its own invocation, as in the blog. With the admission barrier (as deployed), each
# launch is completed once every region acknowledged it, and the counts include the acknowledgements
# and the launches' timers.
STORM_CASES = (
    ("at once", False, True, False),
    ("at once, unbuffered", False, False, False),
    ("one by one", True, True, False),
    ("at once, barrier", False, True, True),
    ("at once, unbuffered, barrier", False, False, True),
)
# The product logs every snapshot and reconcile at INFO: thousands of lines in a storm.
PRODUCT_LOGGERS = ("sgmesh-producer", "sgmesh-consumer")

_worker_endpoint = ""


def _ratio(baseline: float, sgmesh: float) -> str:
    return f"{baseline / sgmesh:.1f}x" if sgmesh else "-"


def _quiet_product() -> None:
    for name in PRODUCT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _change_label(members: int, side: str) -> str:
    return f"one change at {members} members per region: {side}"


def _storm_label(size: int, case: str, side: str) -> str:
    return f"storm of {size} launches {case}: {side}"


def count_jobs() -> dict[str, Job]:
    """Every measured side once, the costliest first so that the workers finish together (each job's
    CPU seconds are in build/bench.json). The baseline's storms do not depend on sgmesh's buffering,
    so the cases at once share theirs."""
    jobs: dict[str, Job] = {}
    for size in sorted(scenarios.STORM_SIZES, reverse=True):
        for case, one_by_one, buffered, barrier in STORM_CASES:
            jobs[_storm_label(size, case, "sgmesh")] = partial(
                scenarios.sgmesh_storm, size=size, one_by_one=one_by_one, buffered=buffered, barrier=barrier
            )
            arrival = scenarios.arrival(one_by_one=one_by_one)
            jobs.setdefault(
                _storm_label(size, arrival, "baseline"),
                partial(scenarios.baseline_storm, size=size, one_by_one=one_by_one),
            )
    for members in sorted(scenarios.CLUSTER_SIZES, reverse=True):
        jobs[_change_label(members, "sgmesh")] = partial(scenarios.sgmesh_change, members=members)
        jobs[_change_label(members, "baseline")] = partial(scenarios.baseline_change, members=members)
    return jobs


def _start_worker() -> None:
    """A worker's own embedded AWS, for the jobs it runs one after the other."""
    global _worker_endpoint
    _quiet_product()
    aws = ExitStack()
    _worker_endpoint = aws.enter_context(embedded_aws())
    atexit.register(aws.close)
    # Registered last, so it runs first: the collections of the interpreter's exit would otherwise walk
    # every object the jobs left (5 to 20 s per worker, measured), which the OS frees at once anyway.
    atexit.register(gc.freeze)


def _run(job: Job) -> tuple[Any, float]:
    """The job's result and the CPU seconds it took, the worker's embedded AWS included."""
    started = time.process_time()
    return job(_worker_endpoint), time.process_time() - started


def run_jobs(jobs: dict[str, Job], workers: int, console: Console) -> tuple[dict[str, Any], dict[str, float]]:
    """Each job's result and CPU seconds, by label, from `workers` processes in submission order."""
    results: dict[str, Any] = {}
    cpu_seconds: dict[str, float] = {}
    # Spawned, not forked: each worker starts from a clean interpreter, the same on every platform.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker) as pool:
        futures = {pool.submit(_run, job): label for label, job in jobs.items()}
        for future in as_completed(futures):
            label = futures[future]
            results[label], cpu_seconds[label] = future.result()
            console.log(f"{label} ({cpu_seconds[label]:.0f} s CPU)")
    return results, cpu_seconds


def count_rows(results: dict[str, Any]) -> tuple[list[Row], dict[str, Any]]:
    """The table's rows of counts, and the same counts for build/bench.json, from the jobs' results."""
    rows: list[Row] = []
    changes = [
        scenarios.ChangeCost(
            members,
            results[_change_label(members, "sgmesh")],
            *results[_change_label(members, "baseline")],
        )
        for members in scenarios.CLUSTER_SIZES
    ]
    for cost in changes:
        per_region = max(cost.sgmesh_per_region.values())
        rows.append(
            (
                f"1. one launch, N={cost.members_per_region}/region: calls (sgmesh: busiest region)",
                str(per_region),
                str(cost.baseline_total),
                _ratio(cost.baseline_total, per_region),
            )
        )
    storms = []
    for case, one_by_one, buffered, barrier in STORM_CASES:
        for size in scenarios.STORM_SIZES:
            arrival = scenarios.arrival(one_by_one=one_by_one)
            storm = scenarios.StormCost(
                size,
                arrival,
                buffered,
                results[_storm_label(size, case, "sgmesh")],
                results[_storm_label(size, arrival, "baseline")],
                barrier,
            )
            storms.append(storm)
            rows += _storm_rows(storm, case, barrier=barrier)
    return rows, {
        "one_change": [asdict(cost) for cost in changes],
        "storm": [{**asdict(storm), "ratio": storm.ratio} for storm in storms],
    }


def _storm_rows(storm: scenarios.StormCost, case: str, *, barrier: bool) -> list[Row]:
    sgmesh, baseline = storm.sgmesh, storm.baseline
    waited = [
        (
            "   simulated s from launch to CONTINUE, at most / completed at the admission timeout",
            f"{sgmesh.max_seconds_to_continue:.0f} / {sgmesh.admission_timeouts}",
            "-",
            "",
        )
    ]
    return [
        (
            f"2. {storm.size} launches {case}: calls in total",
            str(sgmesh.total),
            str(baseline.total),
            _ratio(baseline.total, sgmesh.total),
        ),
        (
            "   EC2 writes in 2 regions / max A+R per batch / writes to another region",
            f"{sgmesh.ec2_mutating_in_baseline_regions} / {sgmesh.max_grants_per_batch} / "
            f"{sgmesh.cross_region_writes}",
            f"{baseline.ec2_mutating} / - / {baseline.cross_region_writes}",
            "",
        ),
        *(waited if barrier else []),
    ]


def timing_rows() -> tuple[list[Row], dict[str, Any]]:
    """The table's rows of times and sizes, measured in this process once no job runs."""
    rows: list[Row] = []
    plan_ms = scenarios.plan_cpu_seconds() * 1000
    rows.append(
        ("3. reconcile plan, 1,000 members x 3 ports: CPU ms (target < 20)", f"{plan_ms:.1f}", "-", "")
    )
    imports = {
        module: statistics.median(scenarios.import_seconds(module) for _ in range(5)) * 1000
        for module in scenarios.HANDLER_MODULES
    }
    for module, millis in imports.items():
        rows.append((f"4. import {module}: ms (target < 300)", f"{millis:.0f}", "-", ""))
    with embedded_aws() as endpoint:
        runs = scenarios.end_to_end(endpoint)
    wall = [run.wall_seconds for run in runs]
    sim = [run.sim_seconds for run in runs]
    rows.append(
        (
            "5. launch -> every region converged: wall s median / max",
            f"{statistics.median(wall):.2f} / {max(wall):.2f}",
            "-",
            "",
        )
    )
    rows.append(("   simulated s median / max", f"{statistics.median(sim):.0f} / {max(sim):.0f}", "-", ""))
    size = scenarios.snapshot_bytes()
    rows.append(
        (
            "6. snapshot of 1,000 members, every field, 4 IPv6 each: bytes (SNS limit 262,144)",
            f"{size:,}",
            "-",
            "",
        )
    )
    return rows, {
        "plan_cpu_ms": plan_ms,
        "import_ms": imports,
        "end_to_end": [asdict(run) for run in runs],
        "snapshot_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="processes sharing the counting jobs")
    workers = parser.parse_args().workers
    _quiet_product()
    console = Console(width=150)  # the table stays whole when written to a file or a pipe
    started = time.perf_counter()
    results, cpu_seconds = run_jobs(count_jobs(), workers, console)
    rows, output = count_rows(results)
    console.log("timings, alone")
    timed, timings = timing_rows()
    rows += timed
    output.update(
        timings,
        table=[dict(zip(("scenario", "sgmesh", "baseline", "ratio"), row, strict=True)) for row in rows],
        job_cpu_seconds=cpu_seconds,
        workers=workers,
        wall_seconds=time.perf_counter() - started,
    )
    table = Table("scenario", "sgmesh", "baseline (blog, 2 regions)", "ratio", title="sgmesh bench")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps(output, indent=2) + "\n")
    console.print(f"written to {OUTPUT} ({output['wall_seconds']:.0f} s with {workers} workers)")


if __name__ == "__main__":
    main()
