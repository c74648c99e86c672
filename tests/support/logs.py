"""Reading the structured fields a Powertools log line carries (its `extra`), typed for mypy."""

from __future__ import annotations

import logging
from typing import Any


def extra(record: logging.LogRecord, name: str) -> Any:
    """The `extra` field `name` of a captured log record (KeyError when the line does not carry it)."""
    return record.__dict__[name]
