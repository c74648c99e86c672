"""The JSON Schema files other tools read must match the models the code validates with."""

from __future__ import annotations

import json

from schemas.generate import rendered


def test_published_json_schemas_are_up_to_date() -> None:
    for path, text in rendered().items():
        assert path.exists(), f"{path.name} is missing: run `make schemas`"
        assert path.read_text() == text, f"{path.name} is stale: run `make schemas`"


def test_the_snapshot_schema_states_the_address_and_size_bounds() -> None:
    schema = json.loads(next(text for path, text in rendered().items() if "snapshot" in path.name))
    assert schema["properties"]["members"]["maxItems"] == 1000
    assert schema["properties"]["schema_version"]["const"] == 1
