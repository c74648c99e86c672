"""make chaos: every scenario at full size on its own embedded AWS, and one table of the results.

Exits 1 if any scenario lost a member, kept an extra rule, did not converge or broke an invariant.
"""

from __future__ import annotations

import logging
import sys
import time

import requests
from rich.console import Console
from rich.table import Table

from sgmesh.local.embedded import embedded_aws
from tests.chaos.harness import ChaosMesh, Report
from tests.chaos.scenarios import SCENARIOS

SIZES = {
    "region_outage": 6,
    "crash_points": 3,
    "delivery_schedules": 40,
    "throttling": 3,
    "poison_batch": 3,
    "leaving_by_hand": 3,
    "racing_writers": 3,
    "lifecycle_completion": 2,
    "group_retired": 3,
    "table_recreated": 3,
    "region_readded": 3,
    "consumer_table_recreated": 3,
    "quota_pressure": 3,
    "acknowledgements_lossy": 5,
}


def run_all(endpoint: str) -> list[tuple[Report, float]]:
    results = []
    for name, (scenario, regions, spec) in SCENARIOS.items():
        requests.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()
        started = time.perf_counter()
        mesh = ChaosMesh(endpoint, regions, spec).provision()
        try:
            results.append((scenario(mesh, SIZES[name]), time.perf_counter() - started))
        finally:
            mesh.close()
    return results


def table(results: list[tuple[Report, float]]) -> Table:
    grid = Table(title="sgmesh under faults")
    for column in ("scenario", "faults injected", "events", "lost members", "extra rules", "converged"):
        grid.add_column(column)
    grid.add_column("retries (API + SQS)")
    grid.add_column("broken invariants")
    grid.add_column("seconds", justify="right")
    for report, seconds in results:
        grid.add_row(
            report.scenario,
            report.faults,
            str(report.events),
            str(report.lost_members),
            str(report.extra_rules),
            "[green]yes[/]" if report.converged else "[red]no[/]",
            f"{report.api_retries} + {report.redeliveries}",
            "; ".join(report.violations) or "none",
            f"{seconds:.1f}",
        )
    return grid


def main() -> int:
    # The product's own log lines (thousands, rejections included) would bury the table.
    logging.disable(logging.CRITICAL)
    with embedded_aws() as endpoint:
        results = run_all(endpoint)
    Console(width=200).print(table(results))
    return 0 if all(report.ok for report, _seconds in results) else 1


if __name__ == "__main__":
    sys.exit(main())
