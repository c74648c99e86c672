"""An environment whose AWS settings lead nowhere, for showing what does not depend on them."""

from __future__ import annotations

import os

import pytest

# The discard port: nothing listens on it, so a client that follows the environment fails at once.
NOWHERE = "http://127.0.0.1:9"


def point_nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials, no configuration files, and an endpoint nothing answers on."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_ENDPOINT_URL", NOWHERE)
