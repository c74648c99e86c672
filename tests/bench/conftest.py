"""Fixtures for the benchmark's count tests: the session's embedded AWS, left clean for the next test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud.sns_certificates import install_certificate_source


@pytest.fixture
def endpoint(aws: str) -> Iterator[str]:
    """The scenarios reset the embedded AWS themselves; a failed one may leave its certificates
    installed."""
    yield aws
    install_certificate_source(None)
