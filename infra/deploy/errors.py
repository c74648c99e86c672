"""The deploy's one error: something a platform engineer has to fix, said in its message."""

from __future__ import annotations


class DeployError(Exception):
    """Something a platform engineer has to fix; the message says what."""
