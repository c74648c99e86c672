"""The benchmark's deterministic results, at sizes that keep `make test` fast: the blog model's
calibration, and sgmesh's call counts against it (counts only; times are reported by `make bench`)."""

from __future__ import annotations

import pytest
from moto.ec2.models import elastic_network_interfaces

from tests.bench import scenarios


def test_given_one_launch_at_n_members_then_the_baseline_costs_n_plus_9_and_sgmesh_the_same_in_any_n(
    endpoint: str,
) -> None:
    # GIVEN two regions of N members each once the launch is in; WHEN one instance launches
    small, large = (scenarios.one_change(endpoint, members) for members in (2, 10))
    # THEN the blog model makes the calibrated N + 9 calls, 2 of them writes into the other region
    assert (small.baseline_total, small.baseline_remote_writes) == (11, 2)
    assert (large.baseline_total, large.baseline_remote_writes) == (19, 2)
    # AND sgmesh's calls per region do not depend on N
    assert small.sgmesh_per_region == large.sgmesh_per_region


def test_given_a_jump_of_10_then_25_then_the_baseline_is_calibrated_and_sgmesh_gains_with_size(
    endpoint: str,
) -> None:
    # WHEN a group jumps from 0 to M instances, M lifecycle events at once
    small, large = (scenarios.storm(endpoint, size, one_by_one=False) for size in (10, 25))
    # THEN the blog model costs M^2 + 7M + 2 calls, M^2 of them DescribeInstances
    assert (small.baseline.total, small.baseline.describe_instances) == (172, 100)
    assert (large.baseline.total, large.baseline.describe_instances) == (802, 625)
    # AND sgmesh makes fewer calls, and the advantage grows with M (linear against quadratic)
    assert small.ratio > 1
    assert large.ratio > small.ratio
    for storm in (small, large):
        assert_storm_targets(storm)


def test_given_arrivals_one_by_one_then_the_baseline_costs_half_m_squared_and_sgmesh_meets_its_targets(
    endpoint: str,
) -> None:
    # WHEN six instances launch one at a time, each handled before the next
    storm = scenarios.storm(endpoint, 6, one_by_one=True)
    # THEN the blog model costs M^2/2 + 9.5M calls (exactly M(M+1)/2 + 9M)
    assert storm.baseline.total == 75
    assert_storm_targets(storm)


def assert_storm_targets(storm: scenarios.StormCost) -> None:
    """No write to another region, no more EC2 writes than the blog where both run, one reconcile
    (at most one Authorize and one Revoke) per consumer batch."""
    assert storm.sgmesh.cross_region_writes == 0
    assert storm.sgmesh.ec2_mutating_in_baseline_regions <= storm.baseline.ec2_mutating
    assert storm.sgmesh.max_grants_per_batch <= 2


# The 2017 design's calls for a jump from 0 to 50 on its two regions (M^2 + 7M + 2, calibrated above).
BASELINE_50_AT_ONCE = 50**2 + 7 * 50 + 2


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "eventbridge-to-the-function"])
def test_given_the_admission_barrier_then_a_storm_of_50_launches_stays_10x_cheaper_than_the_2017_design(
    endpoint: str, buffered: bool
) -> None:
    # WHEN 50 instances launch at once in one region of three, each completed only once every region
    # acknowledged it (the acknowledgements, the launches' records and timers all counted, in every region)
    storm = scenarios.sgmesh_storm(endpoint, 50, one_by_one=False, buffered=buffered, barrier=True)
    # THEN the whole mesh makes at most a tenth of the 2017 design's calls on its two regions
    assert BASELINE_50_AT_ONCE == 2852
    assert storm.total * 10 <= BASELINE_50_AT_ONCE, storm
    # AND no launch was completed at the timeout, and none waited for longer than a few batching windows
    assert storm.admission_timeouts == 0
    assert storm.max_seconds_to_continue < 30
    assert storm.cross_region_writes == 0


def test_given_moto_draws_an_address_already_in_use_then_the_bench_account_draws_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN moto's random draw repeats an address (as it does about once in 65 at 1,000 instances)
    draws = iter(["54.214.0.1", "54.214.0.1", "54.214.0.2"])
    monkeypatch.setattr(scenarios, "random_public_ip", lambda: next(draws))
    # WHEN two network interfaces get their public address in the bench's account
    with scenarios.distinct_public_ips():
        # moto's interfaces call the name their module imported (not re-exported, hence the ignore)
        addresses = [elastic_network_interfaces.random_public_ip() for _ in range(2)]  # type: ignore[attr-defined]
    # THEN they get two addresses, as in AWS, so a launch always changes the rules and the counts repeat
    assert addresses == ["54.214.0.1", "54.214.0.2"]


@pytest.mark.parametrize("module", scenarios.HANDLER_MODULES)
def test_given_a_handler_module_then_it_imports_no_powertools_utility_it_does_not_use(module: str) -> None:
    # WHEN the handler's module is imported in a fresh interpreter (a cold start)
    # THEN neither the X-Ray SDK nor an unused Powertools utility is loaded
    assert scenarios.unused_powertools(module) == []


def test_given_a_snapshot_of_1000_members_with_every_field_then_it_is_far_under_the_sns_limit() -> None:
    assert scenarios.snapshot_bytes(1000) < 262_144 / 2
