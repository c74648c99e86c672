"""The JSON Schema files other tools read must match the models the code validates with."""

from __future__ import annotations

import json
from pathlib import Path

import schemas
from schemas.generate import rendered


def test_published_json_schemas_are_up_to_date() -> None:
    for path, text in rendered().items():
        assert path.exists(), f"{path.name} is missing: run `make schemas`"
        assert path.read_text() == text, f"{path.name} is stale: run `make schemas`"


def test_the_snapshot_schema_states_the_address_and_size_bounds() -> None:
    schema = json.loads(next(text for path, text in rendered().items() if "snapshot" in path.name))
    assert schema["properties"]["members"]["maxItems"] == 1000
    assert schema["properties"]["schema_version"]["const"] == 2


def test_the_snapshot_schema_says_the_members_travel_plain_or_packed_never_both_nor_neither() -> None:
    schema = json.loads(next(text for path, text in rendered().items() if "snapshot" in path.name))
    assert "members" not in schema["required"]
    assert schema["oneOf"] == [{"required": ["members"]}, {"required": ["members_gzip"]}]
    assert schema["properties"]["members_gzip"]["contentEncoding"] == "base64"


def test_the_previous_versions_schema_stays_published_unchanged() -> None:
    # What older producers publish and tables may still hold (docs/events.md): version 1 as released.
    schema = json.loads((Path(schemas.__file__).parent / "membership-snapshot.v1.schema.json").read_text())
    assert schema["properties"]["schema_version"]["const"] == 1
    assert "retired" not in schema["$defs"]["CauseKind"]["enum"]
