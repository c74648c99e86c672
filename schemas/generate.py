"""Write the JSON Schema of every published model next to it: `python -m schemas.generate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.events import (
    ACKNOWLEDGEMENT_SCHEMA_VERSION,
    PACKED_MEMBERS,
    RESYNC_SCHEMA_VERSION,
    SCHEMA_VERSION,
    Acknowledgement,
    MembershipSnapshot,
    ResyncRequest,
)
from schemas.settings import ENVIRONMENT_NAMES, Settings

HERE = Path(__file__).parent


def snapshot_schema() -> dict[str, Any]:
    """The model, and the packed form its members travel in when the plain one would not fit a delivery
    (MembershipSnapshot.to_json): exactly one of the two."""
    schema = MembershipSnapshot.model_json_schema(mode="validation")
    schema["properties"][PACKED_MEMBERS] = {
        "type": "string",
        "contentEncoding": "base64",
        "contentMediaType": "application/gzip",
        "description": "The members array as JSON, gzip-compressed, in base64: set instead of `members`.",
        "title": "Members Gzip",
    }
    schema["required"].remove("members")
    schema["oneOf"] = [{"required": ["members"]}, {"required": [PACKED_MEMBERS]}]
    schema["$id"] = f"https://sgmesh.dev/schemas/membership-snapshot.v{SCHEMA_VERSION}.schema.json"
    return schema


def resync_request_schema() -> dict[str, Any]:
    schema = ResyncRequest.model_json_schema(mode="validation")
    schema["$id"] = f"https://sgmesh.dev/schemas/resync-request.v{RESYNC_SCHEMA_VERSION}.schema.json"
    return schema


def acknowledgement_schema() -> dict[str, Any]:
    schema = Acknowledgement.model_json_schema(mode="validation")
    schema["$id"] = (
        f"https://sgmesh.dev/schemas/acknowledgement.v{ACKNOWLEDGEMENT_SCHEMA_VERSION}.schema.json"
    )
    return schema


def settings_schema() -> dict[str, Any]:
    """The settings model, each property annotated with the environment variable that sets it."""
    schema = Settings.model_json_schema(mode="validation")
    for field, variable in ENVIRONMENT_NAMES.items():
        schema["properties"][field]["x-environment-variable"] = variable
    schema["$id"] = "https://sgmesh.dev/schemas/settings.schema.json"
    return schema


def rendered() -> dict[Path, str]:
    return {
        HERE / f"membership-snapshot.v{SCHEMA_VERSION}.schema.json": _dump(snapshot_schema()),
        HERE / f"resync-request.v{RESYNC_SCHEMA_VERSION}.schema.json": _dump(resync_request_schema()),
        HERE / f"acknowledgement.v{ACKNOWLEDGEMENT_SCHEMA_VERSION}.schema.json": _dump(
            acknowledgement_schema()
        ),
        HERE / "settings.schema.json": _dump(settings_schema()),
    }


def _dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    for path, text in rendered().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
