"""The producer's metric: one EMF line when instances are left out, in the consumer's namespace."""

from __future__ import annotations

import json

import pytest

from producers.metrics import NAMESPACE, EmfOutcomes, ProducerOutcome


def test_instances_left_out_are_one_emf_line_with_the_clusters_dimensions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    EmfOutcomes("prod").count(ProducerOutcome.INSTANCES_LEFT_OUT, 2)

    (line,) = capsys.readouterr().out.splitlines()
    document = json.loads(line)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE == "sgmesh"
    assert directive["Dimensions"] == [["service", "cluster"]]
    assert (document["service"], document["cluster"], document["InstancesLeftOut"]) == (
        "sgmesh-producer",
        "prod",
        [2.0],
    )


def test_nothing_left_out_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    EmfOutcomes("prod").count(ProducerOutcome.INSTANCES_LEFT_OUT, 0)

    assert capsys.readouterr().out == ""
