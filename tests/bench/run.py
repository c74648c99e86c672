"""`make bench`: every scenario at full size, printed as one table and written to build/bench.json."""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sgmesh.local.embedded import embedded_aws
from tests.bench import scenarios

OUTPUT = Path("build/bench.json")
Row = tuple[str, str, str, str]


def _ratio(baseline: float, sgmesh: float) -> str:
    return f"{baseline / sgmesh:.1f}x" if sgmesh else "-"


# The product logs every snapshot and reconcile at INFO: thousands of lines in a storm.
PRODUCT_LOGGERS = ("sgmesh-producer", "sgmesh-consumer")


def main() -> None:
    for name in PRODUCT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    console = Console(width=150)  # the table stays whole when written to a file or a pipe
    rows: list[Row] = []
    results: dict[str, Any] = {}
    with embedded_aws() as endpoint:
        changes = []
        for members in scenarios.CLUSTER_SIZES:
            console.log(f"one change at {members} members per region")
            cost = scenarios.one_change(endpoint, members)
            changes.append(cost)
            per_region = max(cost.sgmesh_per_region.values())
            rows.append(
                (
                    f"1. one launch, N={members}/region: calls (sgmesh: busiest region)",
                    str(per_region),
                    str(cost.baseline_total),
                    _ratio(cost.baseline_total, per_region),
                )
            )
        results["one_change"] = [asdict(cost) for cost in changes]
        storms = []
        # (label, one by one, buffered): the buffering queue is how sgmesh deploys; without it each
        # lifecycle event is its own invocation, as in the blog.
        cases = (("at once", False, True), ("at once, unbuffered", False, False), ("one by one", True, True))
        for label, one_by_one, buffered in cases:
            for size in scenarios.STORM_SIZES:
                console.log(f"storm of {size} launches, {label}")
                storm = scenarios.storm(endpoint, size, one_by_one=one_by_one, buffered=buffered)
                storms.append(storm)
                rows.append(
                    (
                        f"2. {size} launches {label}: calls in total",
                        str(storm.sgmesh_total),
                        str(storm.baseline_total),
                        _ratio(storm.baseline_total, storm.sgmesh_total),
                    )
                )
                rows.append(
                    (
                        "   EC2 writes in 2 regions / max A+R per batch / writes to another region",
                        f"{storm.sgmesh_ec2_mutating_in_baseline_regions} / "
                        f"{storm.sgmesh_max_grants_per_batch} / {storm.sgmesh_cross_region_writes}",
                        f"{storm.baseline_ec2_mutating} / - / {storm.baseline_cross_region_writes}",
                        "",
                    )
                )
        results["storm"] = [{**asdict(storm), "ratio": storm.ratio} for storm in storms]
        console.log("end to end")
        runs = scenarios.end_to_end(endpoint)
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
    rows.append(("6. snapshot of 1,000 members: bytes (SNS limit 262,144)", f"{size:,}", "-", ""))
    results.update(
        plan_cpu_ms=plan_ms,
        import_ms=imports,
        end_to_end=[asdict(run) for run in runs],
        snapshot_bytes=size,
        table=[dict(zip(("scenario", "sgmesh", "baseline", "ratio"), row, strict=True)) for row in rows],
    )
    table = Table("scenario", "sgmesh", "baseline (blog, 2 regions)", "ratio", title="sgmesh bench")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written to {OUTPUT}")


if __name__ == "__main__":
    main()
