"""`make bench`'s plumbing: which jobs it runs and how their results become the table's rows."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.bench import run, scenarios


def fake_result(job: run.Job) -> Any:
    """A result of the shape the job's scenario returns; the numbers say which job gave it."""
    size = job.keywords.get("size") or job.keywords["members"]
    if job.func is scenarios.sgmesh_change:
        return dict.fromkeys(("us-east-1", "us-west-2"), size)
    if job.func is scenarios.baseline_change:
        return size + 9, 2
    if job.func is scenarios.sgmesh_storm:
        return scenarios.SgmeshStorm(size, 0, 2, 1, 5.0)
    return scenarios.BaselineStorm(size * 100, size**2, 2, size + 1)


def test_given_the_bench_then_each_side_is_measured_once_and_every_count_row_finds_its_jobs() -> None:
    # GIVEN the bench's jobs
    jobs = run.count_jobs()
    # THEN each scenario side is one job, and the baseline's storms at once (it has no buffer) are
    # measured once for the buffered and the unbuffered rows
    functions = Counter(job.func for job in jobs.values())
    storms, clusters = len(scenarios.STORM_SIZES), len(scenarios.CLUSTER_SIZES)
    assert functions == {
        scenarios.sgmesh_change: clusters,
        scenarios.baseline_change: clusters,
        scenarios.sgmesh_storm: len(run.STORM_CASES) * storms,
        scenarios.baseline_storm: 2 * storms,
    }
    # WHEN their results become rows
    rows, output = run.count_rows({label: fake_result(job) for label, job in jobs.items()})
    # THEN every change and every storm case has its rows (with the barrier, its wait too), each storm
    # beside its own baseline
    per_storm = sum(3 if barrier else 2 for *_case, barrier in run.STORM_CASES)
    assert len(rows) == clusters + per_storm * storms
    assert all(storm["baseline"]["total"] == storm["size"] * 100 for storm in output["storm"])
    assert [change["baseline_total"] for change in output["one_change"]] == [
        members + 9 for members in scenarios.CLUSTER_SIZES
    ]
